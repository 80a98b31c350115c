"""Helpers the tests share: run one component under mocks, and read the pinned references."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from deploy import mockrun


def find_reference_dir() -> Path:
    """The pinned upstream reference set: $SCALEPLANE_REFERENCE_DIR, or the nearest shared/reference
    above the tests (beside the project in CI and on main; further up from a worktree)."""
    configured = os.environ.get("SCALEPLANE_REFERENCE_DIR")
    if configured:
        return Path(configured)
    for ancestor in Path(__file__).resolve().parents:
        candidate = ancestor / "shared" / "reference"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no shared/reference directory above the tests (set SCALEPLANE_REFERENCE_DIR)")


REFERENCE_DIR = find_reference_dir()


def run_component(build: Callable[[k8s.Provider], Any], *, preview: bool = False) -> mockrun.PlanResult:
    """Run `build(provider)` as a one-component program with an explicit Kubernetes provider."""

    def program() -> None:
        provider = k8s.Provider("test-provider", kubeconfig="unused-under-mocks", context="test")
        built = build(provider)
        if built is not None:
            pulumi.export("component", built)

    return mockrun.run("test", {}, program, preview=preview, project="scaleplane")


def objects(result: mockrun.PlanResult, kind: str) -> list[dict[str, Any]]:
    """The rendered Kubernetes objects of one kind."""
    return [r.inputs for r in result.resources if r.is_kubernetes_object and r.inputs.get("kind") == kind]


def one(result: mockrun.PlanResult, kind: str) -> dict[str, Any]:
    found = objects(result, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@functools.cache
def chart_defaults(chart: str) -> dict[str, Any]:
    """The pinned chart's default values (../shared/reference/charts/<chart>/values.yaml)."""
    return yaml.safe_load((REFERENCE_DIR / "charts" / chart / "values.yaml").read_text()) or {}


@functools.cache
def chart_version(chart: str) -> str:
    return str(yaml.safe_load((REFERENCE_DIR / "charts" / chart / "Chart.yaml").read_text())["version"])


def value_paths(values: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every leaf we set (a list counts as a leaf)."""
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from value_paths(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def unknown_value_paths(values: dict[str, Any], chart: str) -> list[str]:
    """Paths in `values` that the pinned chart's values.yaml does not have."""
    defaults = chart_defaults(chart)
    missing = []
    for path in value_paths(values):
        node: Any = defaults
        for part in path.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                missing.append(path)
                break
    return missing
