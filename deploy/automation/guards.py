"""The guards: what the driver refuses to do, and why (exit 5, `EXIT_REFUSED`).

- Destroying a production stack (named prod, or `scaleplane:production: true`) needs
  --allow-destroy-production.
- An `up` whose preview would delete or replace a stateful or protected resource needs
  --allow-data-loss; the engine itself refuses to delete or replace a protected one (no flag
  overrides `protect`), and that refusal is reported as the same guard.

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
