"""Where the project lives and how a stack's configuration is read from its files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy import stackyaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACKS = ("local", "dev", "staging", "prod")


class StackConfigError(ValueError):
    """A stack's configuration file is missing or unreadable, or holds what no config value can."""


def _top_level_config(path: stackyaml.Path) -> bool:
    """The Pulumi CLI passes a stack's top-level scalar config values exactly as written."""
    return len(path) == 2 and path[0] == "config"


def mapping_file(
    path: Path, project_dir: Path, keep_text: Callable[[stackyaml.Path], bool] = lambda path: False
) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (an empty file is an empty one)."""
    shown = path.relative_to(project_dir) if path.is_relative_to(project_dir) else path
    try:
        document = stackyaml.load(path.read_bytes(), str(shown), keep_text)
    except FileNotFoundError:
        raise StackConfigError(f"{shown}: no such file") from None
    except stackyaml.YamlError as error:
        if len(error.problems) == 1 and error.problems[0].startswith(str(shown)):
            raise StackConfigError(error.problems[0]) from None
        raise StackConfigError(f"{shown}:\n" + "\n".join(f"  - {problem}" for problem in error.problems)) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise StackConfigError(f"{shown}: expected a mapping at the top level, found {type(document).__name__}")
    return document


def _section(document: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    """`document[key]` as a mapping ({} when absent)."""
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StackConfigError(f"{path.name}: '{key}' must be a mapping of keys, found {type(value).__name__}")
    return value


def project_file(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """Pulumi.yaml, which must name the project."""
    document = mapping_file(project_dir / "Pulumi.yaml", project_dir)
    if not isinstance(document.get("name"), str) or not document["name"]:
        raise StackConfigError("Pulumi.yaml: 'name' (the project name and config namespace) is missing")
    return document


def stack_config_path(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    directory = project_file(project_dir).get("stackConfigDir", ".")
    return project_dir / directory / f"Pulumi.{stack}.yaml"


def _as_config_string(value: Any) -> str:
    """Pulumi hands a program every config value as a string; structured values as JSON.

    Values come from stackyaml, which builds only JSON types (top-level scalars already as text).
    """
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
    for key, declaration in _section(project, "config", project_dir / "Pulumi.yaml").items():
        qualified = key if ":" in key else f"{namespace}:{key}"
        if isinstance(declaration, dict):
            if "default" in declaration:
                raw[qualified] = _as_config_string(declaration["default"])
            elif "value" in declaration:
                raw[qualified] = _as_config_string(declaration["value"])
        else:
            raw[qualified] = _as_config_string(declaration)
    document = mapping_file(path, project_dir, _top_level_config)
    for key, value in _section(document, "config", path).items():
        if ":" not in str(key):
            # Stack config keys are <namespace>:<name>; a bare one would otherwise be skipped silently.
            raise StackConfigError(f"{path.name}: config key {key!r} has no namespace; write {namespace}:{key}")
        if isinstance(value, dict) and set(value) == {"secure"}:
            raise StackConfigError(f"{path.name}: {key} is an encrypted secret; the offline plan takes none")
        raw[key] = _as_config_string(value)
    return raw
