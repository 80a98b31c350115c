"""Helpers the tests share: run one component under mocks, and read the pinned references."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from deploy import mockrun, reference
from deploy import validate as schema

T = TypeVar("T")


def reference_file(*parts: str) -> Path:
    """A pinned upstream file (`reference_file("charts", "metallb", "values.yaml")`): from the reference
    set ($SCALEPLANE_REFERENCE_DIR, or the nearest shared/reference above the project), else the cache
    .scaleplane/reference, fetched and sha256-checked if need be (deploy.reference). The calling test
    is skipped, with one line saying how to get it, when there is no way to have it. Read every
    upstream file through here (never a path of its own), so a clone with nothing beside it skips."""
    relative = "/".join(parts)
    path = reference.file(relative)
    if path is None:
        pytest.skip(
            f"needs upstream data {relative} ({reference.unavailable_reason(relative)}): {reference.HOW_TO_GET}",
            allow_module_level=True,
        )
    return path


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
    """The pinned chart's default values (charts/<chart>/values.yaml of the reference set)."""
    return yaml.safe_load(reference_file("charts", chart, "values.yaml").read_text()) or {}


@functools.cache
def chart_version(chart: str) -> str:
    return str(yaml.safe_load(reference_file("charts", chart, "Chart.yaml").read_text())["version"])


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


def crd_checked(check: Callable[[], T]) -> T:
    """`check()`, or the calling test skipped when a custom resource's pinned CRD cannot be had."""
    try:
        return check()
    except schema.SchemaUnavailableError as error:
        pytest.skip(f"needs the pinned CRD {error}: {reference.HOW_TO_GET}")
