"""Where the project lives and how a stack's configuration is read from its files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACKS = ("local", "dev", "staging", "prod")


class StackConfigError(ValueError):
    """A stack's configuration file is missing or unreadable."""


def project_file(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    return yaml.safe_load((project_dir / "Pulumi.yaml").read_text())


def stack_config_path(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    directory = project_file(project_dir).get("stackConfigDir", ".")
    return project_dir / directory / f"Pulumi.{stack}.yaml"


def _as_config_string(value: Any) -> str:
    """Pulumi hands a program every config value as a string; structured values as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """The raw config map a `pulumi up -s <stack>` program sees: project defaults, then the stack's.

    Keys in the project's own namespace may be written bare in Pulumi.yaml; they are qualified
    here, as the Pulumi CLI does.
    """
    project = project_file(project_dir)
    namespace = project["name"]
    path = stack_config_path(stack, project_dir)
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in path.parent.glob("Pulumi.*.yaml"))
        raise StackConfigError(
            f"unknown stack {stack!r}: no {path.relative_to(project_dir)} (stacks: {', '.join(known)})"
        )
    raw: dict[str, str] = {}
    for key, declaration in (project.get("config") or {}).items():
        qualified = key if ":" in key else f"{namespace}:{key}"
        if isinstance(declaration, dict):
            if "default" in declaration:
                raw[qualified] = _as_config_string(declaration["default"])
            elif "value" in declaration:
                raw[qualified] = _as_config_string(declaration["value"])
        else:
            raw[qualified] = _as_config_string(declaration)
    document = yaml.safe_load(path.read_text()) or {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            raise StackConfigError(f"{path.name}: {key} is an encrypted secret; the offline plan takes none")
        raw[key] = _as_config_string(value)
    return raw
