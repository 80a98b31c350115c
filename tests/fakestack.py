"""An in-process stand-in for `pulumi.automation.Stack`, for tests of the deploy drivers.

`FakeStack` answers preview/up/refresh/destroy/outputs the way `auto.Stack` does, without a
Pulumi CLI: it streams progress lines to `on_output`, sends engine events to `on_event` (written as
the JSON the CLI emits and parsed by the SDK's own `EngineEvent.from_json`), returns the SDK's
PreviewResult/UpResult/RefreshResult/DestroyResult, and raises `auto.CommandError` where the CLI
would exit non-zero: a mandatory policy violation, a failing step, a protected resource that a
preview, up or destroy would delete or replace (with the engine's own error), policy pack configs
that do not pair one to one with the packs. Every call is recorded with its keyword arguments, and
keyword arguments the real method does not take are rejected, so a driver cannot pass something
`auto.Stack` would not accept.

    stack = FakeStack("dev", plan=[Step("create", "kubernetes:apps/v1:Deployment", "todo")])
    deploy.automation.workspace.stack_factory = stack.factory
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional

from pulumi import automation as auto

PROJECT = "scaleplane"


@dataclass(frozen=True)
class Step:
    """One resource and what the engine does to it: create, update, replace, delete or same.

    For `refresh`, `op` is the result of reading the resource back (same, update or delete).
    `protect`: the resource is protected in the stack's state; `unprotect`: this update's program
    drops that flag. Like the engine, deleting a protected resource, or replacing one that stays
    protected, is an error (the engine does let a replacement drop `protect` in the same update).
    """

    op: str
    type: str
    name: str
    protect: bool = False
    fails: bool = False
    unprotect: bool = False
    #: The type chain of the resource's parents (`scaleplane:database:BlueGreenDatabase`), as in a URN.
    parent: str = ""

    @property
    def refused_by_protect(self) -> bool:
        if self.op == "delete":
            return self.protect
        return self.op == "replace" and self.protect and not self.unprotect

    def urn(self, stack: str) -> str:
        qualified = f"{self.parent}${self.type}" if self.parent else self.type
        return f"urn:pulumi:{stack}::{PROJECT}::{qualified}::{self.name}"


@dataclass(frozen=True)
class Finding:
    """A policy finding the fake policy pack reports (level: advisory or mandatory)."""

    policy: str
    level: str
    resource: str
    message: str
    pack: str = "scaleplane"
    type: str = "kubernetes:apps/v1:Deployment"


class FakeStack:
    """A scripted stack: `plan` is what preview/up do, `drift` what refresh finds, `resources` what exists."""

    def __init__(
        self,
        name: str,
        *,
        plan: Sequence[Step] = (),
        drift: Sequence[Step] = (),
        resources: Sequence[Step] = (),
        findings: Sequence[Finding] = (),
        outputs: Optional[Mapping[str, Any]] = None,
        secret_outputs: Sequence[str] = (),
        error: Optional[str] = None,
    ):
        self.name = name
        self.plan = list(plan)
        self.drift = list(drift)
        self.resources = list(resources)
        self.findings = list(findings)
        self._outputs = dict(outputs or {})
        self._secret = set(secret_outputs)
        #: When set, every operation fails with this CLI error line (e.g. a backend error).
        self.error = error
        #: When set, the next previews (ups) fail with this engine error, after their events.
        self.fail_preview: Optional[str] = None
        self.fail_up: Optional[str] = None
        #: Warnings the SDK would have issued (an on_event callback that raised).
        self.warnings: list[str] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.opened: list[dict[str, Any]] = []
        self.config: dict[str, auto.ConfigValue] = {}
        #: Outputs of deployed resources by name, for export_stack.
        self.state: dict[str, dict[str, Any]] = {}
        self._sequence = itertools.count(1)

    # --- what a StackFactory returns ---------------------------------------------------------

    def factory(self, stack_name: str, **options: Any) -> FakeStack:
        """A `deploy.automation.StackFactory` that opens this stack (and records how)."""
        if stack_name != self.name:
            raise auto.StackNotFoundError(
                auto.CommandResult(stdout="", stderr=f"error: no stack named '{stack_name}' found", code=255)
            )
        self.opened.append({"stack_name": stack_name, **options})
        return self

    # --- auto.Stack's interface --------------------------------------------------------------

    def preview(self, **kwargs: Any) -> auto.PreviewResult:
        self._record("preview", kwargs)
        emit = self._emitter(kwargs)
        emit.line(f"Previewing update ({self.name}):")
        for step in self.plan:
            self._step_events(emit, step, planning=True, fail=False)
        self._protect(emit, self.plan, "preview failed")
        self._policy(emit, kwargs)
        if self.fail_preview:
            self._engine_error(emit, self.fail_preview, "preview failed")
        changes = _change_summary(self.plan)
        emit.event({"summaryEvent": {"resourceChanges": changes, "durationSeconds": 1, "maybeCorrupt": False}})
        self._expect_no_changes(emit, kwargs, changes)
        return auto.PreviewResult(stdout="\n".join(emit.lines), stderr="", change_summary=changes)

    def up(self, **kwargs: Any) -> auto.UpResult:
        self._record("up", kwargs)
        emit = self._emitter(kwargs)
        emit.line(f"Updating ({self.name}):")
        # `target`: the engine updates those resources alone; everything else keeps its state.
        targets = kwargs.get("target")
        plan = [step for step in self.plan if not targets or step.urn(self.name) in targets]
        self._protect(emit, plan, "update failed")
        self._policy(emit, kwargs)
        if self.fail_up:
            self._engine_error(emit, self.fail_up, "update failed")
        failed = []
        for step in plan:
            self._step_events(emit, step, planning=False, fail=step.fails)
            if step.fails:
                failed.append(step)
        if failed:
            self._fail(emit, "update failed")
        changes = _change_summary(plan)
        self._expect_no_changes(emit, kwargs, changes)
        done = {step.urn(self.name): step for step in plan}
        kept = [step for step in self.resources if step.urn(self.name) not in done] if targets else []
        self.resources = kept + [
            Step("same", s.type, s.name, s.protect and not s.unprotect, parent=s.parent)
            for s in plan
            if s.op != "delete"
        ]
        return auto.UpResult(
            stdout="\n".join(emit.lines), stderr="", summary=_summary("update", changes), outputs=self.outputs()
        )

    def refresh(self, **kwargs: Any) -> auto.RefreshResult:
        self._record("refresh", kwargs)
        emit = self._emitter(kwargs)
        emit.line(f"Refreshing ({self.name}):")
        for step in self.drift:
            urn = step.urn(self.name)
            state = _state(step, urn)
            # The engine announces a refresh step, then reports what reading the resource found.
            emit.event({"resourcePreEvent": {"metadata": _metadata("refresh", step, urn, old=state, new=state)}})
            emit.line(f"    ~ {step.type} {step.name} refreshing")
            new = None if step.op == "delete" else state
            emit.event({"resOutputsEvent": {"metadata": _metadata(step.op, step, urn, old=state, new=new)}})
        changes = dict(Counter(step.op for step in self.drift))
        self._expect_no_changes(emit, kwargs, changes)
        return auto.RefreshResult(stdout="\n".join(emit.lines), stderr="", summary=_summary("refresh", changes))

    def destroy(self, **kwargs: Any) -> auto.DestroyResult:
        self._record("destroy", kwargs)
        emit = self._emitter(kwargs)
        emit.line(f"Destroying ({self.name}):")
        self._protect(emit, [Step("delete", s.type, s.name, s.protect) for s in self.resources], "destroy failed")
        for step in self.resources:
            self._step_events(emit, Step("delete", step.type, step.name, step.protect), planning=False, fail=False)
        changes = {"delete": len(self.resources)}
        self.resources = []
        self._outputs = {}
        return auto.DestroyResult(stdout="\n".join(emit.lines), stderr="", summary=_summary("destroy", changes))

    def export_stack(self) -> auto.Deployment:
        """The state the last update left: each resource's urn, type and outputs (`state` of the step)."""
        resources = [
            {
                "urn": step.urn(self.name),
                "type": step.type,
                "protect": step.protect,
                "outputs": self.state.get(step.name, {}),
            }
            for step in self.resources
        ]
        return auto.Deployment(version=3, deployment={"manifest": {}, "resources": resources})

    def outputs(self) -> auto.OutputMap:
        if self.error:
            raise auto.CommandError(auto.CommandResult(stdout="", stderr=f"error: {self.error}", code=255))
        return {key: auto.OutputValue(value=value, secret=key in self._secret) for key, value in self._outputs.items()}

    def get_config(self, key: str, *, path: bool = False) -> auto.ConfigValue:
        if path:
            top, parts = _property_path(key)
            node: Any = self._document(top)
            for part in parts:
                if not isinstance(node, dict) or part not in node:
                    self._missing(key)
                node = node[part]
            value = node if isinstance(node, str) else json.dumps(node)
            return auto.ConfigValue(value=value, secret=self.config[top].secret)
        if key not in self.config:
            self._missing(key)
        return self.config[key]

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        """`pulumi config set [--path]`: with a path, "true"/"false" become booleans, digits integers."""
        if not path:
            self.config[key] = value
            return
        top, parts = _property_path(key)
        document = self._document(top) if top in self.config else {}
        node = document
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        text = value.value
        node[parts[-1]] = {"true": True, "false": False}.get(text, int(text) if text.isdigit() else text)
        self.config[top] = auto.ConfigValue(value=json.dumps(document), secret=value.secret)

    def remove_config(self, key: str, *, path: bool = False) -> None:
        """`pulumi config rm [--path]`: a key that is not there is no error."""
        if not path:
            self.config.pop(key, None)
            return
        top, parts = _property_path(key)
        if top not in self.config:
            return
        document = self._document(top)
        node: Any = document
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(parts[-1], None)
        self.config[top] = auto.ConfigValue(value=json.dumps(document), secret=self.config[top].secret)

    def _document(self, top: str) -> Any:
        if top not in self.config:
            self._missing(top)
        return json.loads(self.config[top].value)

    @staticmethod
    def _missing(key: str) -> None:
        raise auto.CommandError(
            auto.CommandResult(stdout="", stderr=f"error: configuration key '{key}' not found", code=255)
        )

    # --- the machinery -----------------------------------------------------------------------

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == method]

    def _record(self, method: str, kwargs: dict[str, Any]) -> None:
        accepted = inspect.signature(getattr(auto.Stack, method)).parameters
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise TypeError(f"auto.Stack.{method}() takes no {', '.join(unknown)}")
        if kwargs.get("color") not in (None, "auto", "always", "never", "raw"):
            self._refuse(f"unsupported color option: {kwargs['color']!r}")
        packs, configs = kwargs.get("policy_packs") or [], kwargs.get("policy_pack_configs") or []
        for pack in packs:
            if not (Path(pack) / "PulumiPolicy.yaml").is_file():
                self._refuse(f"no policy pack at {pack} (PulumiPolicy.yaml is missing)")
        for config in configs:
            if not Path(config).is_file():
                self._refuse(f"reading policy pack config {config}: no such file")
        if configs and len(configs) != len(packs):
            # The CLI pairs --policy-pack-config with --policy-pack by position and refuses other counts.
            raise auto.CommandError(
                auto.CommandResult(
                    stdout="",
                    stderr="error: the number of --policy-pack-config paths must match the number of "
                    "--policy-pack paths",
                    code=255,
                )
            )
        self.calls.append((method, dict(kwargs)))
        if self.error:
            raise auto.CommandError(auto.CommandResult(stdout="", stderr=f"error: {self.error}", code=255))

    @staticmethod
    def _refuse(message: str) -> None:
        """The CLI refusing its arguments before anything runs."""
        raise auto.CommandError(auto.CommandResult(stdout="", stderr=f"error: {message}", code=255))

    def _expect_no_changes(self, emit: _Emitter, kwargs: dict[str, Any], changes: Mapping[str, int]) -> None:
        """`expect_no_changes=True` makes the CLI itself fail when there are changes."""
        if kwargs.get("expect_no_changes") and any(count for op, count in changes.items() if op != "same"):
            self._fail(emit, "no changes were expected but changes were proposed")

    def _emitter(self, kwargs: dict[str, Any]) -> _Emitter:
        return _Emitter(kwargs.get("on_output"), kwargs.get("on_event"), self._sequence)

    def _step_events(self, emit: _Emitter, step: Step, *, planning: bool, fail: bool) -> None:
        urn = step.urn(self.name)
        state = _state(step, urn)
        old = None if step.op == "create" else state
        new = None if step.op == "delete" else {**state, "protect": step.protect and not step.unprotect}
        # A replacement is three engine steps on one URN, as the engine reports them.
        ops = ["create-replacement", "replace", "delete-replaced"] if step.op == "replace" else [step.op]
        for op in ops:
            metadata = _metadata(op, step, urn, old=old, new=new)
            emit.event({"resourcePreEvent": {"metadata": metadata, "planning": planning}})
            emit.line(f"    {_SYMBOL.get(op, ' ')} {step.type} {step.name} {op}")
            if fail:
                emit.event(
                    {
                        "diagnosticEvent": {
                            "severity": "error",
                            "urn": urn,
                            "color": "never",
                            "message": f"{step.type} {step.name}: {op} failed: timed out\n",
                        }
                    }
                )
                emit.event({"resOpFailedEvent": {"metadata": metadata, "status": 1, "steps": 1}})
                return
            emit.event({"resOutputsEvent": {"metadata": metadata, "planning": planning}})

    def _protect(self, emit: _Emitter, steps: Sequence[Step], reason: str) -> None:
        """The engine's refusal to delete or replace a protected resource: an error, and the command fails."""
        refused = [step for step in steps if step.refused_by_protect]
        for step in refused:
            urn = step.urn(self.name)
            if step.op == "delete":
                message = (
                    f'unable to delete resource "{urn}"\nas it is currently marked for protection. To unprotect the '
                    "resource, either remove the `protect` flag from the resource in your Pulumi program or use "
                    f"the command:\n`pulumi state unprotect {urn}`"
                )
            else:
                message = (
                    f'unable to replace resource "{urn}"\nas it is currently marked for protection. To unprotect '
                    "the resource, remove the `protect` flag from the resource in your Pulumi program and run "
                    "`pulumi up`"
                )
            emit.event({"diagnosticEvent": {"severity": "error", "urn": urn, "color": "never", "message": message}})
        if refused:
            self._fail(emit, reason)

    def _policy(self, emit: _Emitter, kwargs: dict[str, Any]) -> None:
        """The policy pack runs when it is attached; a mandatory finding fails the command."""
        if not kwargs.get("policy_packs"):
            return
        for finding in self.findings:
            urn = Step("same", finding.type, finding.resource).urn(self.name)
            emit.event(
                {
                    "policyEvent": {
                        "message": finding.message,
                        "color": "never",
                        "policyName": finding.policy,
                        "policyPackName": finding.pack,
                        "policyPackVersion": "0.1.0",
                        "policyPackVersionTag": "0.1.0",
                        "enforcementLevel": finding.level,
                        "resourceUrn": urn,
                    }
                }
            )
            emit.line(f"    [{finding.level}] {finding.pack} v0.1.0 {finding.policy} ({finding.resource})")
        if any(finding.level == "mandatory" for finding in self.findings):
            self._fail(emit, "preview failed")

    def _engine_error(self, emit: _Emitter, message: str, reason: str) -> None:
        """An error the engine reports (a provider, the backend): a diagnostic, then the command fails."""
        emit.event({"diagnosticEvent": {"severity": "error", "urn": "", "color": "never", "message": message + "\n"}})
        self._fail(emit, reason)

    def _fail(self, emit: _Emitter, reason: str) -> None:
        raise auto.CommandError(auto.CommandResult(stdout="\n".join(emit.lines), stderr=f"error: {reason}", code=255))


_SYMBOL = {
    "create": "+",
    "update": "~",
    "delete": "-",
    "replace": "+-",
    "create-replacement": "++",
    "delete-replaced": "--",
    "same": " ",
}


class _Emitter:
    def __init__(
        self,
        on_output: Optional[Callable[[str], Any]],
        on_event: Optional[Callable[[Any], Any]],
        sequence: itertools.count,
    ):
        self.on_output = on_output
        self.on_event = on_event
        self.sequence = sequence
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)
        if self.on_output is not None:
            self.on_output(text)

    def event(self, payload: dict[str, Any]) -> None:
        if self.on_event is not None:
            data = {"sequence": next(self.sequence), "timestamp": 1_700_000_000, **payload}
            try:
                self.on_event(auto.EngineEvent.from_json(data))
            except Exception as error:  # noqa: BLE001 - as pulumi.automation's event servicer does
                # The SDK turns an exception raised in on_event into a warning, and the command goes on.
                warnings.warn(f"Failed to parse engine event\nEvent: {json.dumps(data)}\n{error}", stacklevel=2)


_PATH_PART = re.compile(r'\.([A-Za-z_$][A-Za-z0-9_$]*)|\["([^"]+)"\]')


def _property_path(key: str) -> tuple[str, list[str]]:
    """`ns:key.a["b-c"].d` -> ("ns:key", ["a", "b-c", "d"]), refusing what Pulumi's strict paths refuse."""
    match = re.match(r"^([^.\[]+)", key)
    if match is None:
        raise auto.CommandError(auto.CommandResult(stdout="", stderr=f"error: invalid key {key!r}", code=255))
    top, rest = match.group(1), key[match.end() :]
    parts, position = [], 0
    for part in _PATH_PART.finditer(rest):
        if part.start() != position:
            break
        parts.append(part.group(1) or part.group(2))
        position = part.end()
    if position != len(rest):
        raise auto.CommandError(
            auto.CommandResult(stdout="", stderr=f"error: invalid configuration key path {key!r}", code=255)
        )
    return top, parts


def _state(step: Step, urn: str) -> dict[str, Any]:
    return {
        "type": step.type,
        "urn": urn,
        "id": f"{step.name}-id",
        "parent": "",
        "provider": "",
        "custom": True,
        "protect": step.protect,
    }


def _metadata(op: str, step: Step, urn: str, *, old: Optional[dict], new: Optional[dict]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"op": op, "urn": urn, "type": step.type, "provider": ""}
    if old is not None:
        metadata["old"] = old
    if new is not None:
        metadata["new"] = new
    return metadata


def _change_summary(plan: Sequence[Step]) -> dict[str, int]:
    """The engine's count of logical steps by op (a replacement counts once, as replace)."""
    return dict(Counter(step.op for step in plan))


def _summary(kind: str, changes: Mapping[str, int]) -> auto.UpdateSummary:
    now = datetime.now(UTC)
    return auto.UpdateSummary(
        kind=kind,
        start_time=now,
        end_time=now,
        message="",
        environment={},
        config={},
        result="succeeded",
        resource_changes=dict(changes),
    )
