"""Streaming and tallying what the engine reports while a command runs.

`LineStream` is an on_output/on_error callback that writes each line as it arrives; `EventTally`
(pass `on_event=tally`) collects engine events into changes by type, policy findings, data-loss
risks (the guards read them) and error diagnostics.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from pulumi import automation as auto

from deploy.automation.exits import plain_text
from deploy.automation.guards import DataLossRisk, protect_refusal, step_risk

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


def urn_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


def diagnostic_line(message: str) -> str:
    """One line of an engine error: the exception line of a program traceback, else the first line."""
    refused = protect_refusal(message)
    if refused is not None:
        return f"unable to {refused.kind} {refused.urn}: it is protected"
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
                resource=urn_name(found.resource_urn or ""),
                message=plain_text(found.message),
            )
            if finding not in self.policy:
                self.policy.append(finding)
        if event.diagnostic_event is not None and event.diagnostic_event.severity == "error":
            line = diagnostic_line(event.diagnostic_event.message)
            if line:
                self.errors.append(line)
            refused = protect_refusal(event.diagnostic_event.message)
            if refused is not None:
                self.risks[refused.urn] = self.protect_refusals[refused.urn] = refused

    def _record_step(self, metadata: auto.StepEventMetadata) -> None:
        op = metadata.op.value if isinstance(metadata.op, auto.OpType) else str(metadata.op)
        kind = SUMMARY_KIND.get(op)
        if kind is None:
            return
        previous = self.steps.get(metadata.urn)
        if previous is None or previous[1] != "replace":
            self.steps[metadata.urn] = (metadata.type, kind)
        risk = step_risk(metadata, kind)
        if risk is not None:
            self.risks[metadata.urn] = risk

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
