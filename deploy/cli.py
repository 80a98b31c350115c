"""`python -m deploy <command> --stack S`: one entry point for people and CI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Optional

from deploy import automation, bluegreen, plan, reference

#: Each command module offers `register(subparsers) -> None`; its parser sets `handler(args) -> int`.
COMMAND_MODULES = [plan, automation, bluegreen, reference]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy",
        description="scaleplane: plan offline, or drive Pulumi stacks through the Automation API.",
        epilog=automation.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, like any Unix tool.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
