"""deploy/automation/ stays split along its seams: each part reads in a sitting, and they import one way."""

from __future__ import annotations

import ast
from pathlib import Path

import deploy.automation

PACKAGE = Path(deploy.automation.__file__).parent
#: Lower layers first; a module may import only the ones before it.
LAYERS = ["exits", "workspace", "guards", "events", "output", "commands"]
MAX_LINES = 300


def imported_parts(path: Path) -> set[str]:
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("deploy.automation."):
                parts.add(node.module.removeprefix("deploy.automation."))
            elif node.module == "deploy.automation":
                parts.update(alias.name for alias in node.names)
    return parts


def test_every_module_of_the_package_is_a_known_layer() -> None:
    modules = sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__")
    assert modules == sorted(LAYERS)


def test_each_part_reads_in_a_sitting() -> None:
    for path in PACKAGE.glob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_LINES, f"{path.name} has {lines} lines (at most {MAX_LINES})"


def test_parts_import_only_lower_layers() -> None:
    for index, layer in enumerate(LAYERS):
        upward = imported_parts(PACKAGE / f"{layer}.py") - set(LAYERS[:index])
        assert not upward, f"{layer} imports {sorted(upward)}, which are not below it"


def test_the_package_offers_what_other_drivers_import() -> None:
    for name in ("open_stack", "StackLike", "EventTally", "LineStream", "DriverError", "error_line", "EXIT_REFUSED"):
        assert name in deploy.automation.__all__ and hasattr(deploy.automation, name)
    # The seams tests set live in one place, so setting them cannot silently miss.
    assert not hasattr(deploy.automation, "stack_factory") and not hasattr(deploy.automation, "PROJECT_DIR")
