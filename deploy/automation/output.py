"""What a command run prints: the summary people read and the JSON CI reads (`Report`), with every
secret stack output masked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from pulumi import automation as auto

from deploy.automation.events import SUMMARY_KINDS, EventTally, urn_name
from deploy.automation.exits import EXIT_CHANGES_PENDING, EXIT_OK
from deploy.automation.guards import DataLossRisk

SECRET_MASK = "[secret]"


def masked_outputs(outputs: Mapping[str, auto.OutputValue]) -> dict[str, Any]:
    """Stack outputs with every secret value replaced by [secret]."""
    return {key: SECRET_MASK if value.secret else value.value for key, value in sorted(outputs.items())}


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
            "failed": sorted(urn_name(urn) for urn in self.tally.failed),
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
            lines.append("   failed: " + ", ".join(sorted(urn_name(urn) for urn in self.tally.failed)))
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
