"""Drive the project's stacks through the Pulumi Automation API: preview, up, refresh, destroy, outputs.

`python -m deploy <command> --stack S` is what CI runs. The program is the project itself
(`Pulumi.yaml` beside `__main__.py`, config in `stacks/`), opened as a local-program workspace.

What other commands reuse (the blue/green driver does):

- `open_stack(name, policy=True)`: a stack ready to run, with the policy pack attached to every
  preview and up. It goes through `stack_factory`, which tests replace with an in-process fake
  (`deploy.fakestack.FakeStack`).
- `StackLike`: the part of `pulumi.automation.Stack` the driver uses.
- `EventTally` + `LineStream`: stream progress as it happens and tally engine events into a summary,
  policy findings and data-loss risks.
- `DriverError` and the `EXIT_*` codes.

Nothing here prints a secret: stack outputs marked secret are masked, and the CLI masks secrets in
its own progress output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol, TextIO

import yaml
from pulumi import automation as auto

from deploy import project

# Exit codes: what CI branches on. Documented in `python -m deploy --help`.
EXIT_OK = 0
#: The operation ran and failed (provider error, program error, backend error).
EXIT_FAILED = 1
#: Bad command-line usage (argparse's own code).
EXIT_USAGE = 2
#: A mandatory policy of the policy pack was violated; nothing was changed by an `up`.
EXIT_POLICY_VIOLATION = 3
#: `preview --expect-no-changes` (or `refresh --expect-no-changes`) found changes.
EXIT_CHANGES_PENDING = 4
#: A guard refused: destroying production, or an `up` that would delete or replace stateful data.
EXIT_REFUSED = 5
#: The driver could not start: no Pulumi CLI, no passphrase, unknown stack, no policy pack.
EXIT_SETUP = 6

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}  success
  {EXIT_FAILED}  the operation failed (see the streamed output and the last line)
  {EXIT_USAGE}  bad command-line usage
  {EXIT_POLICY_VIOLATION}  a mandatory policy was violated (the update did not run)
  {EXIT_CHANGES_PENDING}  changes pending (preview/refresh with --expect-no-changes)
  {EXIT_REFUSED}  refused by a guard: destroying production (--allow-destroy-production), or an up
     that would delete or replace stateful or protected resources (--allow-data-loss)
  {EXIT_SETUP}  cannot start: no Pulumi CLI, no passphrase/credentials, unknown stack, no policy pack

environment:
  PULUMI_BACKEND_URL                state backend (default: file://<project>/.pulumi-state)
  PULUMI_CONFIG_PASSPHRASE[_FILE]   passphrase of the default secrets provider of self-managed backends
"""

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

#: How each engine step op counts in a summary. Ops absent here (same, read, refresh, discard,
#: remove-pending-replace) change nothing. A replacement is several steps on one URN
#: (create-replacement, replace, delete-replaced): it counts once, as a replace.
SUMMARY_KIND = {
    "create": "create",
    "update": "update",
    "delete": "delete",
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": "replace",
    "discard-replaced": "replace",
    "import": "import",
    "import-replacement": "replace",
}
SUMMARY_KINDS = ("create", "update", "replace", "delete", "import")
#: Engine summary ops that mean "nothing to do".
NO_CHANGE_OPS = frozenset({"same", "read", "refresh"})

SECRET_MASK = "[secret]"
PRODUCTION_STACK = "prod"

#: The project the driver runs; tests point it at a copy.
PROJECT_DIR: Path = project.PROJECT_DIR


class DriverError(Exception):
    """A condition that ends the command with one clear line and an exit code (never a traceback)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code


class StackLike(Protocol):
    """The part of `pulumi.automation.Stack` the driver (and the blue/green driver) uses."""

    @property
    def name(self) -> str: ...

    def preview(self, **kwargs: Any) -> auto.PreviewResult: ...

    def up(self, **kwargs: Any) -> auto.UpResult: ...

    def refresh(self, **kwargs: Any) -> auto.RefreshResult: ...

    def destroy(self, **kwargs: Any) -> auto.DestroyResult: ...

    def outputs(self) -> auto.OutputMap: ...

    def get_config(self, key: str, *, path: bool = False) -> auto.ConfigValue: ...

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None: ...


class StackFactory(Protocol):
    def __call__(
        self, stack_name: str, *, create: bool, work_dir: Path, backend_url: str, secrets_provider: Optional[str]
    ) -> StackLike: ...


# --- where things are ---------------------------------------------------------------------------


def default_backend_url(project_dir: Optional[Path] = None) -> str:
    return f"file://{(project_dir or PROJECT_DIR) / '.pulumi-state'}"


def backend_url(project_dir: Optional[Path] = None) -> str:
    """PULUMI_BACKEND_URL, or a file backend inside the project (git-ignored)."""
    return os.environ.get("PULUMI_BACKEND_URL") or default_backend_url(project_dir)


def stack_document(stack_name: str, project_dir: Optional[Path] = None) -> dict[str, Any]:
    """The stack's settings file (stacks/Pulumi.<stack>.yaml); an unknown stack is a setup error."""
    project_dir = project_dir or PROJECT_DIR
    path = project.stack_config_path(stack_name, project_dir)
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in path.parent.glob("Pulumi.*.yaml"))
        raise DriverError(
            f"unknown stack {stack_name!r}: no {path.relative_to(project_dir)} (stacks: {', '.join(known)})",
            EXIT_SETUP,
        )
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise DriverError(f"{path.relative_to(project_dir)} is not valid YAML: {err}", EXIT_SETUP) from err


def is_production(stack_name: str, project_dir: Optional[Path] = None) -> bool:
    """A stack named prod, or one whose config says scaleplane:production: true."""
    if stack_name == PRODUCTION_STACK:
        return True
    namespace = project.project_file(project_dir or PROJECT_DIR)["name"]
    value = (stack_document(stack_name, project_dir).get("config") or {}).get(f"{namespace}:production")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


@dataclass(frozen=True)
class PolicyPack:
    """The policy pack to attach: its directory and, when present, this stack's config file."""

    path: Path
    config: Optional[Path]

    def preview_args(self) -> dict[str, list[str]]:
        args = {"policy_packs": [str(self.path)]}
        if self.config is not None:
            args["policy_pack_configs"] = [str(self.config)]
        return args


def policy_pack_for(stack_name: str, project_dir: Optional[Path] = None) -> PolicyPack:
    """policy/ (must hold PulumiPolicy.yaml) with policy/config/<stack>.json when that file exists."""
    directory = (project_dir or PROJECT_DIR) / "policy"
    if not (directory / "PulumiPolicy.yaml").is_file():
        raise DriverError(
            f"no policy pack at {directory} (PulumiPolicy.yaml is missing); pass --no-policy to run without it",
            EXIT_SETUP,
        )
    config = directory / "config" / f"{stack_name}.json"
    return PolicyPack(path=directory, config=config if config.is_file() else None)


SELF_MANAGED_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "postgres://")


def secrets_provider_for(
    stack_name: str, explicit: Optional[str], backend: str, project_dir: Optional[Path] = None
) -> str:
    """The secrets provider a stack will use: the one its stack file records (an existing stack keeps
    it, whatever --secrets-provider says), else --secrets-provider, else the backend's default."""
    document = stack_document(stack_name, project_dir)
    if document.get("secretsprovider"):
        return str(document["secretsprovider"])
    if document.get("encryptionsalt"):
        return "passphrase"
    if explicit:
        return explicit
    if backend.startswith(SELF_MANAGED_SCHEMES):
        return "passphrase"
    return "service"


def require_secrets(provider: str, environ: Optional[Mapping[str, str]] = None) -> None:
    """The passphrase provider needs PULUMI_CONFIG_PASSPHRASE or a readable PULUMI_CONFIG_PASSPHRASE_FILE."""
    if provider != "passphrase":
        return
    environ = os.environ if environ is None else environ
    if "PULUMI_CONFIG_PASSPHRASE" in environ:
        return
    passphrase_file = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if passphrase_file:
        if not os.access(passphrase_file, os.R_OK) or not Path(passphrase_file).is_file():
            raise DriverError(f"PULUMI_CONFIG_PASSPHRASE_FILE={passphrase_file} is not a readable file", EXIT_SETUP)
        return
    raise DriverError(
        "the passphrase secrets provider needs PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE "
        "(or create the stack with --secrets-provider, e.g. awskms://alias/scaleplane)",
        EXIT_SETUP,
    )


# --- opening a stack ----------------------------------------------------------------------------


def error_line(err: BaseException, stderr_lines: Optional[list[str]] = None) -> str:
    """The one line that says why a Pulumi CLI command failed (its last `error:` line)."""
    lines: list[str] = list(stderr_lines or [])
    if isinstance(err, auto.CommandError):
        text = str(err)
        marker = "\n stderr: "
        lines += (text.split(marker, 1)[1] if marker in text else text).splitlines()
    else:
        lines += str(err).splitlines()
    lines = [plain_text(line) for line in lines if plain_text(line)]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1].removeprefix("error:").strip()
    return lines[-1] if lines else type(err).__name__


def local_stack(
    stack_name: str, *, create: bool, work_dir: Path, backend_url: str, secrets_provider: Optional[str]
) -> StackLike:
    """The real stack: a LocalWorkspace on the project directory, through the Pulumi CLI."""
    if shutil.which("pulumi") is None:
        raise DriverError(
            "the Pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/); "
            "`python -m deploy plan` works without it",
            EXIT_SETUP,
        )
    if backend_url == default_backend_url(work_dir):
        (work_dir / ".pulumi-state").mkdir(exist_ok=True)
    options = auto.LocalWorkspaceOptions(
        env_vars={"PULUMI_BACKEND_URL": backend_url},
        secrets_provider=secrets_provider,
    )
    select = auto.create_or_select_stack if create else auto.select_stack
    return select(stack_name, work_dir=str(work_dir), opts=options)


#: How stacks are opened. Tests put a FakeStack factory here.
stack_factory: StackFactory = local_stack


class PolicyStack:
    """A stack whose previews and updates run the policy pack (refresh and destroy take none).

    Everything else is passed through to the wrapped stack; `.stack` is the wrapped one.
    """

    def __init__(self, stack: StackLike, policy: Optional[PolicyPack]):
        self.stack = stack
        self.policy = policy

    @property
    def name(self) -> str:
        return self.stack.name

    def _with_policy(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The caller's policy packs plus ours. The CLI pairs configs with packs by position, so either
        every pack has a config or none has (a pack without one cannot sit beside one with one)."""
        if self.policy is None:
            return kwargs
        packs = list(kwargs.get("policy_packs") or [])
        configs = list(kwargs.get("policy_pack_configs") or [])
        ours = self.policy.preview_args()
        if (configs or "policy_pack_configs" in ours) and (
            len(configs) != len(packs) or "policy_pack_configs" not in ours
        ):
            raise ValueError(
                f"policy packs {packs} and {self.policy.path} cannot run together: pass one config per pack "
                f"(policy_pack_configs) or none; the stack's pack has {'a' if self.policy.config else 'no'} config"
            )
        kwargs["policy_packs"] = packs + ours["policy_packs"]
        if "policy_pack_configs" in ours:
            kwargs["policy_pack_configs"] = configs + ours["policy_pack_configs"]
        return kwargs

    def preview(self, **kwargs: Any) -> auto.PreviewResult:
        return self.stack.preview(**self._with_policy(kwargs))

    def up(self, **kwargs: Any) -> auto.UpResult:
        return self.stack.up(**self._with_policy(kwargs))

    def refresh(self, **kwargs: Any) -> auto.RefreshResult:
        return self.stack.refresh(**kwargs)

    def destroy(self, **kwargs: Any) -> auto.DestroyResult:
        return self.stack.destroy(**kwargs)

    def outputs(self) -> auto.OutputMap:
        return self.stack.outputs()

    def get_config(self, key: str, *, path: bool = False) -> auto.ConfigValue:
        return self.stack.get_config(key, path=path)

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        self.stack.set_config(key, value, path=path)


def open_stack(
    stack_name: str,
    *,
    policy: bool = True,
    create: bool = False,
    secrets_provider: Optional[str] = None,
) -> PolicyStack:
    """Open `stack_name` of this project, ready to run.

    - `policy`: attach the policy pack in policy/ (and policy/config/<stack>.json) to preview and up.
    - `create`: create the stack in the backend if it is not there yet (preview and up do; refresh,
      destroy and outputs need an existing stack).
    - `secrets_provider`: used when the stack is created; an existing stack keeps the provider
      recorded in its stack file.

    The backend is PULUMI_BACKEND_URL (default: a file backend inside the project). Raises
    DriverError (one line, an exit code) for an unknown stack, a missing policy pack, a missing
    passphrase, a missing Pulumi CLI, or a stack the backend does not have.
    """
    stack_document(stack_name)  # unknown stack: fail before anything else
    pack = policy_pack_for(stack_name) if policy else None
    backend = backend_url()
    require_secrets(secrets_provider_for(stack_name, secrets_provider, backend))
    try:
        stack = stack_factory(
            stack_name, create=create, work_dir=PROJECT_DIR, backend_url=backend, secrets_provider=secrets_provider
        )
    except auto.StackNotFoundError as err:
        raise DriverError(
            f"stack {stack_name!r} does not exist in {backend}; `python -m deploy up --stack {stack_name}` creates it",
            EXIT_SETUP,
        ) from err
    except auto.CommandError as err:
        raise DriverError(f"cannot open stack {stack_name!r}: {error_line(err)}", EXIT_SETUP) from err
    except (auto.InvalidVersionError, OSError) as err:
        raise DriverError(f"cannot run the Pulumi CLI: {error_line(err)}", EXIT_SETUP) from err
    return PolicyStack(stack, pack)


# --- streaming and tallying ---------------------------------------------------------------------


class LineStream:
    """An on_output/on_error callback that writes each line to a text stream as it arrives."""

    def __init__(self, stream: TextIO, keep: bool = False):
        self.stream = stream
        self.lines: list[str] = []
        self.keep = keep
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            if self.keep:
                self.lines.append(line)
            print(line, file=self.stream, flush=True)


@dataclass(frozen=True)
class PolicyFinding:
    pack: str
    policy: str
    level: str
    resource: str
    message: str

    @property
    def is_violation(self) -> bool:
        return self.level == "mandatory"

    def as_dict(self) -> dict[str, str]:
        return {
            "pack": self.pack,
            "policy": self.policy,
            "level": self.level,
            "resource": self.resource,
            "message": self.message,
        }


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


def _urn_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


#: ANSI escapes and Pulumi's own colour directives (`<{%fg 1%}>`), which engine messages may carry.
_COLOUR = re.compile(r"\x1b\[[0-9;]*m|<\{%[^%]*%\}>")


def plain_text(message: str) -> str:
    return _COLOUR.sub("", message).strip()


#: The engine's refusal to delete or replace a protected resource (a preview fails with it: the
#: engine never plans such a step, so `protect` is not seen on a delete or replace step's state).
_PROTECT_REFUSAL = re.compile(
    r'unable to (delete|replace) resource "([^"]+)"\s+as it is currently marked for protection'
)


def _urn_type(urn: str) -> str:
    """The resource type in a URN (urn:pulumi:stack::project::parent$type::name)."""
    parts = urn.split("::")
    return parts[2].rsplit("$", 1)[-1] if len(parts) >= 4 else ""


def diagnostic_line(message: str) -> str:
    """One line of an engine error: the exception line of a program traceback, else the first line."""
    refusal = _PROTECT_REFUSAL.search(plain_text(message))
    if refusal is not None:
        kind, urn = refusal.groups()
        return f"unable to {kind} {urn}: it is protected"
    lines = [line.strip() for line in plain_text(message).splitlines() if line.strip()]
    if not lines:
        return ""
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        return lines[-1]
    return lines[0]


@dataclass
class EventTally:
    """Collects engine events (pass `on_event=tally`): changes by type, policy findings, risks, errors."""

    #: urn -> (type, summary kind); the latest op seen for a URN wins, a replace stays a replace.
    steps: dict[str, tuple[str, str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    policy: list[PolicyFinding] = field(default_factory=list)
    risks: dict[str, DataLossRisk] = field(default_factory=dict)
    #: urn -> risk, for the protected resources the engine itself refused to delete or replace.
    protect_refusals: dict[str, DataLossRisk] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, event: auto.EngineEvent) -> None:
        with self._lock:
            self._record(event)

    def _record(self, event: auto.EngineEvent) -> None:
        for step_event in (event.resource_pre_event, event.res_outputs_event):
            if step_event is not None:
                self._record_step(step_event.metadata)
        if event.res_op_failed_event is not None:
            metadata = event.res_op_failed_event.metadata
            self.failed[metadata.urn] = metadata.type
        if event.policy_event is not None:
            found = event.policy_event
            finding = PolicyFinding(
                pack=found.policy_pack_name,
                policy=found.policy_name,
                level=found.enforcement_level,
                resource=_urn_name(found.resource_urn or ""),
                message=plain_text(found.message),
            )
            if finding not in self.policy:
                self.policy.append(finding)
        if event.diagnostic_event is not None and event.diagnostic_event.severity == "error":
            line = diagnostic_line(event.diagnostic_event.message)
            if line:
                self.errors.append(line)
            refusal = _PROTECT_REFUSAL.search(plain_text(event.diagnostic_event.message))
            if refusal is not None:
                kind, urn = refusal.groups()
                type_ = _urn_type(urn)
                reason = "stateful, protected" if type_ in STATEFUL_TYPES else "protected"
                self.risks[urn] = self.protect_refusals[urn] = DataLossRisk(urn, type_, kind, reason)

    def _record_step(self, metadata: auto.StepEventMetadata) -> None:
        op = metadata.op.value if isinstance(metadata.op, auto.OpType) else str(metadata.op)
        kind = SUMMARY_KIND.get(op)
        if kind is None:
            return
        previous = self.steps.get(metadata.urn)
        if previous is None or previous[1] != "replace":
            self.steps[metadata.urn] = (metadata.type, kind)
        if kind in ("delete", "replace"):
            protected = any(state is not None and state.protect for state in (metadata.old, metadata.new))
            reasons = []
            if metadata.type in STATEFUL_TYPES:
                reasons.append("stateful")
            if protected:
                reasons.append("protected")
            if reasons:
                self.risks[metadata.urn] = DataLossRisk(metadata.urn, metadata.type, kind, ", ".join(reasons))

    def by_type(self) -> dict[str, Counter[str]]:
        """Changes per resource type, failed steps excluded."""
        table: dict[str, Counter[str]] = {}
        for urn, (type_, kind) in self.steps.items():
            if urn not in self.failed:
                table.setdefault(type_, Counter())[kind] += 1
        return dict(sorted(table.items()))

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_type().values():
            total.update(counts)
        return total

    @property
    def violations(self) -> list[PolicyFinding]:
        return [finding for finding in self.policy if finding.is_violation]

    @property
    def data_loss_risks(self) -> list[DataLossRisk]:
        return sorted(self.risks.values(), key=lambda risk: (risk.type, risk.name))


def has_changes(change_summary: Optional[Mapping[Any, int]]) -> bool:
    """True when an engine change summary (op -> count) holds anything but same/read/refresh."""
    for op, count in (change_summary or {}).items():
        name = op.value if isinstance(op, auto.OpType) else str(op)
        if name not in NO_CHANGE_OPS and count:
            return True
    return False


def masked_outputs(outputs: Mapping[str, auto.OutputValue]) -> dict[str, Any]:
    """Stack outputs with every secret value replaced by [secret]."""
    return {key: SECRET_MASK if value.secret else value.value for key, value in sorted(outputs.items())}


# --- a command run ------------------------------------------------------------------------------


@dataclass
class Report:
    """What a command did: the summary people read and the JSON CI reads."""

    command: str
    stack: str
    exit_code: int = EXIT_OK
    result: str = "succeeded"
    message: str = ""
    #: The engine's own change counts (op -> count), when the operation returned.
    engine_changes: dict[str, int] = field(default_factory=dict)
    tally: EventTally = field(default_factory=EventTally)
    guard_risks: list[DataLossRisk] = field(default_factory=list)
    outputs: Optional[dict[str, Any]] = None
    secret_outputs: list[str] = field(default_factory=list)
    #: True when the changes are a plan (a preview, or an up stopped at its preview), not done.
    planned: bool = False

    def finish(self, exit_code: int, result: str, message: str = "") -> int:
        self.exit_code, self.result, self.message = exit_code, result, message
        return exit_code

    def set_outputs(self, outputs: Mapping[str, auto.OutputValue]) -> None:
        self.outputs = masked_outputs(outputs)
        self.secret_outputs = sorted(key for key, value in outputs.items() if value.secret)

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "stack": self.stack,
            "result": self.result,
            "exitCode": self.exit_code,
            "message": self.message,
            "changes": dict(self.tally.totals()),
            "changesByType": {type_: dict(counts) for type_, counts in self.tally.by_type().items()},
            "engineChanges": self.engine_changes,
            "failed": sorted(_urn_name(urn) for urn in self.tally.failed),
            "policy": [finding.as_dict() for finding in self.tally.policy],
            "dataLossRisks": [
                {"type": risk.type, "name": risk.name, "change": risk.kind, "reason": risk.reason}
                for risk in self.guard_risks
            ],
            "outputs": self.outputs,
            "secretOutputs": self.secret_outputs,
        }

    def summary(self) -> str:
        verb = "would change" if self.planned else "changed"
        lines = [f"== {self.command} {self.stack}: {self.result} (exit {self.exit_code})"]
        table = self.tally.by_type()
        if table:
            width = max(len(type_) for type_ in table)
            kinds = [kind for kind in SUMMARY_KINDS if any(counts[kind] for counts in table.values())]
            lines.append(f"   {verb}:")
            lines.append("   " + "type".ljust(width) + "".join(f"{kind:>9}" for kind in kinds))
            for type_, counts in table.items():
                lines.append("   " + type_.ljust(width) + "".join(f"{counts[kind] or '-':>9}" for kind in kinds))
            totals = self.tally.totals()
            lines.append("   " + "total".ljust(width) + "".join(f"{totals[kind]:>9}" for kind in kinds))
        elif self.command in ("preview", "up", "refresh", "destroy") and self.exit_code in (
            EXIT_OK,
            EXIT_CHANGES_PENDING,
        ):
            lines.append("   no resource changes")
        if self.tally.failed:
            lines.append("   failed: " + ", ".join(sorted(_urn_name(urn) for urn in self.tally.failed)))
        for finding in self.tally.policy:
            where = f" on {finding.resource}" if finding.resource else ""
            lines.append(f"   policy [{finding.level}] {finding.pack}/{finding.policy}{where}: {finding.message}")
        for risk in self.guard_risks:
            lines.append(f"   data at risk: {risk.describe()}")
        if self.outputs:
            lines.append("   outputs:")
            for key, value in self.outputs.items():
                shown = value if isinstance(value, str) else json.dumps(value)
                lines.append(f"     {key}: {shown}")
        if self.message:
            lines.append(f"   {self.message}")
        return "\n".join(lines)


@dataclass
class RunOptions:
    """The flags every operation shares."""

    color: str = "auto"
    diff: bool = False
    message: Optional[str] = None

    def kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"color": self.color}
        if self.diff:
            kwargs["diff"] = True
        if self.message:
            kwargs["message"] = self.message
        return kwargs


def _failure(report: Report, err: BaseException, stderr: LineStream, tally: EventTally, planning: bool = False) -> int:
    """Turn a failed operation into an exit code: policy violation, refusal or failure, with one line why.

    `planning`: the operation was a preview, so nothing changed; a preview the engine failed because
    it would delete or replace a protected resource is the data-loss guard refusing (exit 5).
    """
    if tally.violations:
        count = len(tally.violations)
        return report.finish(
            EXIT_POLICY_VIOLATION, "policy-violation", f"{count} mandatory policy violation{'s' if count > 1 else ''}"
        )
    if planning and tally.protect_refusals:
        report.guard_risks = sorted(tally.protect_refusals.values(), key=lambda risk: (risk.type, risk.name))
        count = len(report.guard_risks)
        return report.finish(
            EXIT_REFUSED,
            "refused",
            f"the engine refuses to delete or replace {count} protected resource{'s' if count > 1 else ''}; "
            "--allow-data-loss does not override `protect`: drop it in the program (or `pulumi state unprotect`) "
            "first",
        )
    # The engine's first error diagnostic is the root cause; the CLI's own last line is often generic.
    reason = tally.errors[0] if tally.errors else error_line(err, stderr.lines)
    return report.finish(EXIT_FAILED, "failed", reason)


OPERATION_ERRORS = (auto.CommandError, auto.InvalidVersionError, OSError, RuntimeError)


def run_preview(
    stack: StackLike, report: Report, out: TextIO, options: RunOptions, expect_no_changes: bool = False
) -> int:
    stderr = LineStream(sys.stderr, keep=True)
    try:
        result = stack.preview(on_output=LineStream(out), on_error=stderr, on_event=report.tally, **options.kwargs())
    except OPERATION_ERRORS as err:
        return _failure(report, err, stderr, report.tally, planning=True)
    report.engine_changes = _op_counts(result.change_summary)
    if expect_no_changes and has_changes(result.change_summary):
        return report.finish(EXIT_CHANGES_PENDING, "changes-pending", "changes pending, none expected")
    return report.finish(EXIT_OK, "succeeded")


def run_up(stack: StackLike, report: Report, out: TextIO, options: RunOptions, allow_data_loss: bool = False) -> int:
    """Preview first (policy and data-loss guard), then update."""
    print(f"-- previewing {report.stack} before the update", file=out, flush=True)
    report.planned = True
    guard = EventTally()
    stderr = LineStream(sys.stderr, keep=True)
    try:
        stack.preview(on_output=LineStream(out), on_error=stderr, on_event=guard, **options.kwargs())
    except OPERATION_ERRORS as err:
        report.tally = guard
        return _failure(report, err, stderr, guard, planning=True)
    report.guard_risks = guard.data_loss_risks
    if report.guard_risks and not allow_data_loss:
        report.tally = guard
        count = len(report.guard_risks)
        return report.finish(
            EXIT_REFUSED,
            "refused",
            f"refusing to update: {count} stateful or protected resource{'s' if count > 1 else ''} would be deleted "
            "or replaced; --allow-data-loss overrides",
        )
    for risk in report.guard_risks:
        print(f"-- --allow-data-loss: going ahead with {risk.describe()}", file=out, flush=True)
    report.planned = False
    print(f"-- updating {report.stack}", file=out, flush=True)
    stderr = LineStream(sys.stderr, keep=True)
    try:
        result = stack.up(on_output=LineStream(out), on_error=stderr, on_event=report.tally, **options.kwargs())
    except OPERATION_ERRORS as err:
        return _failure(report, err, stderr, report.tally)
    report.engine_changes = _op_counts(result.summary.resource_changes)
    report.set_outputs(result.outputs)
    return report.finish(EXIT_OK, "succeeded")


def run_refresh(
    stack: StackLike, report: Report, out: TextIO, options: RunOptions, expect_no_changes: bool = False
) -> int:
    stderr = LineStream(sys.stderr, keep=True)
    try:
        result = stack.refresh(on_output=LineStream(out), on_error=stderr, on_event=report.tally, **options.kwargs())
        report.set_outputs(stack.outputs())
    except OPERATION_ERRORS as err:
        return _failure(report, err, stderr, report.tally)
    report.engine_changes = _op_counts(result.summary.resource_changes)
    if expect_no_changes and has_changes(result.summary.resource_changes):
        return report.finish(EXIT_CHANGES_PENDING, "changes-pending", "the refresh found drift, none expected")
    return report.finish(EXIT_OK, "succeeded")


def run_destroy(stack: StackLike, report: Report, out: TextIO, options: RunOptions) -> int:
    stderr = LineStream(sys.stderr, keep=True)
    try:
        result = stack.destroy(on_output=LineStream(out), on_error=stderr, on_event=report.tally, **options.kwargs())
    except OPERATION_ERRORS as err:
        return _failure(report, err, stderr, report.tally)
    report.engine_changes = _op_counts(result.summary.resource_changes)
    return report.finish(EXIT_OK, "succeeded")


def run_outputs(stack: StackLike, report: Report) -> int:
    try:
        report.set_outputs(stack.outputs())
    except OPERATION_ERRORS as err:
        return report.finish(EXIT_FAILED, "failed", error_line(err))
    return report.finish(EXIT_OK, "succeeded")


def _op_counts(change_summary: Optional[Mapping[Any, int]]) -> dict[str, int]:
    return {
        (op.value if isinstance(op, auto.OpType) else str(op)): count
        for op, count in sorted((change_summary or {}).items(), key=lambda item: str(item[0]))
    }


# --- the command line ---------------------------------------------------------------------------

COMMANDS = {
    "preview": "show what an update would change, with the policy pack (--expect-no-changes for CI gates)",
    "up": "preview (policy + data-loss guard), then create or update the stack's resources",
    "refresh": "read the real state of the stack's resources into the backend (drift check)",
    "destroy": "delete every resource of the stack (production needs --allow-destroy-production)",
    "outputs": "print the stack's outputs (secrets masked)",
}


def handle(args: argparse.Namespace) -> int:
    """Run one command; print the summary (and JSON with --json); return the exit code."""
    progress: TextIO = sys.stderr if args.json else sys.stdout
    report = Report(command=args.command, stack=args.stack, planned=args.command == "preview")
    options = RunOptions(color=args.color, diff=args.diff, message=args.message)
    try:
        code = _dispatch(args, report, progress, options)
    except DriverError as err:
        # Nothing ran: one line says why, no summary.
        code = report.finish(err.exit_code, "refused" if err.exit_code == EXIT_REFUSED else "error", str(err))
        print(f"deploy {args.command}: {err}", file=sys.stderr, flush=True)
    else:
        print(report.summary(), file=progress, flush=True)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str), flush=True)
    return code


def _dispatch(args: argparse.Namespace, report: Report, out: TextIO, options: RunOptions) -> int:
    command = args.command
    if command == "destroy" and is_production(args.stack) and not args.allow_destroy_production:
        raise DriverError(
            f"refusing to destroy production stack {args.stack!r}; --allow-destroy-production overrides",
            EXIT_REFUSED,
        )
    stack = open_stack(
        args.stack,
        policy=command in ("preview", "up") and not args.no_policy,
        create=command in ("preview", "up"),
        secrets_provider=args.secrets_provider,
    )
    if command == "preview":
        return run_preview(stack, report, out, options, expect_no_changes=args.expect_no_changes)
    if command == "up":
        return run_up(stack, report, out, options, allow_data_loss=args.allow_data_loss)
    if command == "refresh":
        return run_refresh(stack, report, out, options, expect_no_changes=args.expect_no_changes)
    if command == "destroy":
        return run_destroy(stack, report, out, options)
    return run_outputs(stack, report)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for command, help_text in COMMANDS.items():
        parser = subparsers.add_parser(
            command,
            help=help_text,
            description=help_text,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # Flags a command does not offer keep their off value, so every handler sees every attribute.
        parser.set_defaults(
            handler=handle,
            no_policy=False,
            expect_no_changes=False,
            allow_data_loss=False,
            allow_destroy_production=False,
            diff=False,
            message=None,
        )
        parser.add_argument(
            "--stack",
            "-s",
            required=True,
            help=f"stack name ({', '.join(project.STACKS)}), from stacks/Pulumi.<stack>.yaml",
        )
        parser.add_argument(
            "--json", action="store_true", help="print a machine-readable result on stdout (progress goes to stderr)"
        )
        parser.add_argument(
            "--secrets-provider",
            default=None,
            help="secrets provider for a stack created by this run (default: passphrase on self-managed backends)",
        )
        parser.add_argument(
            "--color",
            choices=("auto", "always", "never", "raw"),
            default="auto",
            help="colour of the streamed Pulumi output (default auto)",
        )
        if command in ("preview", "up"):
            parser.add_argument(
                "--no-policy", action="store_true", help="run without the policy pack in policy/ (attached by default)"
            )
        if command in ("preview", "refresh"):
            parser.add_argument(
                "--expect-no-changes", action="store_true", help=f"exit {EXIT_CHANGES_PENDING} when there are changes"
            )
        if command == "up":
            parser.add_argument(
                "--allow-data-loss",
                action="store_true",
                help="update even if stateful or protected resources would be deleted or replaced",
            )
        if command == "destroy":
            parser.add_argument(
                "--allow-destroy-production",
                action="store_true",
                help="destroy even a production stack (named prod or scaleplane:production: true)",
            )
        if command != "outputs":
            parser.add_argument("--diff", action="store_true", help="stream a detailed diff")
            parser.add_argument("--message", "-m", default=None, help="message recorded with the update")
