"""Drive the project's stacks through the Pulumi Automation API: preview, up, refresh, destroy, outputs.

`python -m deploy <command> --stack S` is what CI runs. The program is the project itself
(`Pulumi.yaml` beside `__main__.py`, config in `stacks/`), opened as a local-program workspace.

The parts, each read on its own:

- `exits`: the exit codes CI branches on, `DriverError`, the one line that says why a command failed.
- `workspace`: where a stack lives and how it is opened (project directory, backend, stack file,
  policy pack, secrets provider, `open_stack`). Its `PROJECT_DIR` and `stack_factory` are the seams
  tests set (on `deploy.automation.workspace`, not on this package).
- `guards`: what the driver refuses (destroying production, an `up` that loses data).
- `events`: streaming progress and tallying engine events.
- `output`: the summary and the JSON of a command run, secrets masked.
- `commands`: the `run_*` operations and the command line.

What other commands reuse (the blue/green driver does), importable from this package:

- `open_stack(name, policy=True)`: a stack ready to run, with the policy pack attached to every
  preview and up. It goes through `workspace.stack_factory`, which tests replace with an in-process
  fake (`FakeStack.factory`).
- `StackLike`: the part of `pulumi.automation.Stack` the driver uses.
- `EventTally` + `LineStream`: stream progress as it happens and tally engine events into a summary,
  policy findings and data-loss risks.
- `DriverError` and the `EXIT_*` codes.

Nothing here prints a secret: stack outputs marked secret are masked, and the CLI masks secrets in
its own progress output.
"""

from deploy.automation.commands import COMMANDS, RunOptions, handle, register
from deploy.automation.events import EventTally, LineStream, PolicyFinding, has_changes
from deploy.automation.exits import (
    EXIT_CHANGES_PENDING,
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_POLICY_VIOLATION,
    EXIT_REFUSED,
    EXIT_SETUP,
    EXIT_USAGE,
    DriverError,
    error_line,
    plain_text,
)
from deploy.automation.guards import STATEFUL_TYPES, DataLossRisk
from deploy.automation.output import SECRET_MASK, Report, masked_outputs
from deploy.automation.workspace import (
    PRODUCTION_STACK,
    PolicyPack,
    PolicyStack,
    StackFactory,
    StackLike,
    is_production,
    open_stack,
)

__all__ = [
    "COMMANDS",
    "EXIT_CHANGES_PENDING",
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_POLICY_VIOLATION",
    "EXIT_REFUSED",
    "EXIT_SETUP",
    "EXIT_USAGE",
    "PRODUCTION_STACK",
    "SECRET_MASK",
    "STATEFUL_TYPES",
    "DataLossRisk",
    "DriverError",
    "EventTally",
    "LineStream",
    "PolicyFinding",
    "PolicyPack",
    "PolicyStack",
    "Report",
    "RunOptions",
    "StackFactory",
    "StackLike",
    "error_line",
    "handle",
    "has_changes",
    "is_production",
    "masked_outputs",
    "open_stack",
    "plain_text",
    "register",
]
