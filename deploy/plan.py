"""The offline plan: the program under mocks with a stack's real config (filled in below)."""

from __future__ import annotations

import argparse

from deploy.project import STACKS


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "plan",
        help="run the program offline under mocks: resource tree, manifests, schema and policy checks",
    )
    parser.add_argument("--stack", "-s", default="local", help=f"stack name ({', '.join(STACKS)}); default local")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("plan: not implemented yet")
