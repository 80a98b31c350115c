"""How a driver command ends: its exit code, and the one line that says why.

The exit codes are what CI branches on (documented in `python -m deploy --help`). A `DriverError`
ends a command before anything ran, with one clear line and its code (never a traceback).
"""

from __future__ import annotations

import re
from typing import Optional

from pulumi import automation as auto

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


class DriverError(Exception):
    """A condition that ends the command with one clear line and an exit code (never a traceback)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code


#: ANSI escapes and Pulumi's own colour directives (`<{%fg 1%}>`), which engine messages may carry.
_COLOUR = re.compile(r"\x1b\[[0-9;]*m|<\{%[^%]*%\}>")


def plain_text(message: str) -> str:
    return _COLOUR.sub("", message).strip()


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
