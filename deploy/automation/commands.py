"""The driver's commands: `python -m deploy preview|up|refresh|destroy|outputs --stack S`.

Each `run_*` runs one operation on an opened stack (workspace.open_stack), streams its progress,
tallies its events (events.EventTally), applies the guards (guards) and fills a Report (output);
`handle` is the command-line entry point `register` installs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, TextIO

from pulumi import automation as auto

from deploy import project
from deploy.automation import guards
from deploy.automation.events import EventTally, LineStream, has_changes
from deploy.automation.exits import (
    EXIT_CHANGES_PENDING,
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_POLICY_VIOLATION,
    EXIT_REFUSED,
    DriverError,
    error_line,
)
from deploy.automation.output import Report
from deploy.automation.workspace import StackLike, open_stack


@dataclass
class RunOptions:
    """The flags every operation shares."""

    color: str = "auto"
    diff: bool = False
    message: Optional[str] = None
    #: preview only: refresh the state from the live resources first (`pulumi preview --refresh`).
    refresh: bool = False

    def kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"color": self.color}
        if self.diff:
            kwargs["diff"] = True
        if self.refresh:
            kwargs["refresh"] = True
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
        return report.finish(EXIT_REFUSED, "refused", guards.protect_refusal_message(report.guard_risks))
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


def _database_section(stack: StackLike) -> Optional[dict[str, Any]]:
    """The stack file's blue/green database section (None when the stack runs no database)."""
    try:
        value = stack.get_config(guards.DATABASE_SECTION)
    except auto.CommandError:
        return None
    return json.loads(value.value) if isinstance(value.value, str) else value.value


def run_up(stack: StackLike, report: Report, out: TextIO, options: RunOptions, allow_data_loss: bool = False) -> int:
    """Preview first (policy and data-loss guard), then update."""
    refusal = guards.database_state_refusal(stack.name, _database_section(stack), stack.export_stack())
    if refusal is not None:
        return report.finish(EXIT_REFUSED, "refused", refusal)
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
    refusal = guards.data_loss_refusal(report.guard_risks, allow_data_loss)
    if refusal is not None:
        report.tally = guard
        return report.finish(EXIT_REFUSED, "refused", refusal)
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
    options = RunOptions(color=args.color, diff=args.diff, message=args.message, refresh=args.refresh)
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
    if command == "destroy":
        guards.refuse_destroying_production(args.stack, args.allow_destroy_production)
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
            refresh=False,
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
        if command == "preview":
            parser.add_argument(
                "--refresh",
                action="store_true",
                help="read the live resources first, so drift made outside Pulumi shows as changes (drift checks); "
                "the backend's state is not written",
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
