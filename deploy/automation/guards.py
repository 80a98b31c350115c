"""The guards: what the driver refuses to do, and why (exit 5, `EXIT_REFUSED`).

- Destroying a production stack (named prod, or `scaleplane:production: true`) needs
  --allow-destroy-production.
- An `up` whose preview would delete or replace a stateful or protected resource needs
  --allow-data-loss; the engine itself refuses to delete or replace a protected one (no flag
  overrides `protect`), and that refusal is reported as the same guard.
- An `up` of a stack file whose blue/green database is not what the stack has deployed (another
  live colour, a running colour missing): only `python -m deploy bluegreen` moves those, after its
  verification (`database_state_refusal`; no flag overrides it).

`step_risk` and `protect_refusal` read a risk out of one engine event; `events.EventTally` collects
them while a preview streams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from pulumi import automation as auto

from deploy.automation.exits import EXIT_REFUSED, DriverError, plain_text
from deploy.automation.workspace import is_production

#: Resource types whose deletion or replacement loses data. Blue/green adds a colour instead.
STATEFUL_TYPES = frozenset(
    {
        "kubernetes:core/v1:PersistentVolumeClaim",
        "kubernetes:core/v1:PersistentVolume",
        "kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshot",
        "kubernetes:apps/v1:StatefulSet",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketV2:BucketV2",
        "aws:ebs/volume:Volume",
        "aws:ebs/snapshot:Snapshot",
    }
)


@dataclass(frozen=True)
class DataLossRisk:
    """A step that deletes or replaces a stateful or protected resource."""

    urn: str
    type: str
    kind: str
    reason: str

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    def describe(self) -> str:
        return f"{self.kind} {self.type} {self.name} ({self.reason})"


#: The engine's refusal to delete or replace a protected resource (a preview fails with it: the
#: engine never plans such a step, so `protect` is not seen on a delete or replace step's state).
_PROTECT_REFUSAL = re.compile(
    r'unable to (delete|replace) resource "([^"]+)"\s+as it is currently marked for protection'
)


def _urn_type(urn: str) -> str:
    """The resource type in a URN (urn:pulumi:stack::project::parent$type::name)."""
    parts = urn.split("::")
    return parts[2].rsplit("$", 1)[-1] if len(parts) >= 4 else ""


def step_risk(metadata: auto.StepEventMetadata, kind: str) -> Optional[DataLossRisk]:
    """The risk of one engine step counted as `kind` (see events.SUMMARY_KIND), if it loses data."""
    if kind not in ("delete", "replace"):
        return None
    protected = any(state is not None and state.protect for state in (metadata.old, metadata.new))
    reasons = []
    if metadata.type in STATEFUL_TYPES:
        reasons.append("stateful")
    if protected:
        reasons.append("protected")
    if not reasons:
        return None
    return DataLossRisk(metadata.urn, metadata.type, kind, ", ".join(reasons))


def protect_refusal(message: str) -> Optional[DataLossRisk]:
    """The protected resource an engine error refuses to delete or replace, if the error is that."""
    refusal = _PROTECT_REFUSAL.search(plain_text(message))
    if refusal is None:
        return None
    kind, urn = refusal.groups()
    type_ = _urn_type(urn)
    reason = "stateful, protected" if type_ in STATEFUL_TYPES else "protected"
    return DataLossRisk(urn, type_, kind, reason)


def refuse_destroying_production(stack_name: str, allowed: bool) -> None:
    """Raise the refusal (exit 5) unless --allow-destroy-production was given or the stack is not production."""
    if is_production(stack_name) and not allowed:
        raise DriverError(
            f"refusing to destroy production stack {stack_name!r}; --allow-destroy-production overrides",
            EXIT_REFUSED,
        )


def data_loss_refusal(risks: list[DataLossRisk], allowed: bool) -> Optional[str]:
    """Why an `up` with these risks is refused, or None when it may go ahead (no risk, or --allow-data-loss)."""
    if not risks or allowed:
        return None
    count = len(risks)
    return (
        f"refusing to update: {count} stateful or protected resource{'s' if count > 1 else ''} would be deleted "
        "or replaced; --allow-data-loss overrides"
    )


def protect_refusal_message(refused: list[DataLossRisk]) -> str:
    """Why a preview the engine failed for protected resources is a refusal no flag overrides."""
    count = len(refused)
    return (
        f"the engine refuses to delete or replace {count} protected resource{'s' if count > 1 else ''}; "
        "--allow-data-loss does not override `protect`: drop it in the program (or `pulumi state unprotect`) "
        "first"
    )


# --- one source of truth for the blue/green database --------------------------------------------

DATABASE_SECTION = "scaleplane:database"
DATABASE_COMPONENT = "scaleplane:database:BlueGreenDatabase"


@dataclass(frozen=True)
class DeployedDatabase:
    """What the stack's state says the blue/green database runs: the live colour and the colours."""

    active: str
    colours: tuple[str, ...]


def deployed_database(deployment: auto.Deployment) -> Optional[DeployedDatabase]:
    """The database as last deployed (the Service's selector, the colours' StatefulSets), if any."""
    active, colours = None, []
    for resource in (deployment.deployment or {}).get("resources", []):
        urn, type_ = resource.get("urn", ""), resource.get("type", "")
        if f"{DATABASE_COMPONENT}$" not in urn:
            continue
        outputs = resource.get("outputs") or {}
        if type_ == "kubernetes:core/v1:Service" and urn.endswith("-service"):
            active = ((outputs.get("spec") or {}).get("selector") or {}).get("app")
        elif type_ == "kubernetes:apps/v1:StatefulSet":
            colour = ((outputs.get("metadata") or {}).get("labels") or {}).get("app")
            if colour:
                colours.append(colour)
    if active is None:
        return None
    return DeployedDatabase(active, tuple(sorted(colours)))


def database_state_refusal(stack_name: str, section: Optional[dict], deployment: auto.Deployment) -> Optional[str]:
    """Why an `up` of this database section is refused (exit 5), or None.

    `python -m deploy bluegreen` moves the live colour and adds or retires colours, each after its
    own verification, and writes the result to stacks/Pulumi.<stack>.yaml. An `up` of a stack file
    that says otherwise (an older checkout, an uncommitted rollback) would move traffic to a colour
    nobody verified, or delete a colour that holds data.
    """
    deployed = deployed_database(deployment)
    if deployed is None:
        return None
    section = section or {}
    colours = section.get("colours") or {}
    serving = sorted(c for c, spec in colours.items() if not (spec or {}).get("retired"))
    active = section.get("active")
    problems = []
    if active != deployed.active:
        problems.append(f"it says active: {active}, the stack serves from {deployed.active}")
    gone = [c for c in deployed.colours if c not in serving]
    if gone:
        problems.append(f"it does not run {', '.join(gone)}, which the stack runs")
    if not problems:
        return None
    path = f"stacks/Pulumi.{stack_name}.yaml"
    return (
        f"refusing to update: {path}'s {DATABASE_SECTION} is not what the stack has deployed ({'; '.join(problems)}). "
        f"`python -m deploy bluegreen` changed it and printed what to commit: commit {path} as it left it "
        f"(active: {deployed.active}, colours: {', '.join(deployed.colours)}), or run `python -m deploy bluegreen "
        f"--stack {stack_name}` to move the database; nothing was changed"
    )
