"""Helpers for the traffic tests: run a traffic component on an existing cluster under mocks,
and check what it sets against the pinned reference charts and CRDs."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jsonschema
import pulumi
import yaml
from support import crd_checked, reference_file

from components.cluster.existing import ExistingCluster, ExistingClusterArgs
from deploy import mockrun
from deploy import validate as schema

KUBERNETES_VERSION = "1.34"


def run_on_cluster(
    build: Callable[[pulumi.ProviderResource], Any], *, preview: bool = False, stack: str = "test"
) -> mockrun.PlanResult:
    """Run `build(provider)` as a program whose provider comes from an ExistingCluster."""

    def program() -> None:
        cluster = ExistingCluster("test-cluster", ExistingClusterArgs(context="kind-test"))
        build(cluster.provider)

    return mockrun.run(stack, {}, program, preview=preview, project="scaleplane")


def named(result: mockrun.PlanResult, name: str) -> mockrun.PlannedResource:
    matches = [r for r in result.resources if r.name == name]
    assert len(matches) == 1, f"expected one resource named {name}, found {[r.type for r in matches]}"
    return matches[0]


def kinds(result: mockrun.PlanResult, kind: str) -> list[mockrun.PlannedResource]:
    return [r for r in result.resources if r.inputs.get("kind") == kind]


def depends_on(resource: mockrun.PlannedResource, other: mockrun.PlannedResource) -> bool:
    return other.urn in resource.dependencies


# --- Helm values against the pinned charts ------------------------------------------------------


@functools.cache
def chart_values(chart: str) -> dict[str, Any]:
    """The pinned chart's values.yaml; Istio's defaults are unwrapped from `_internal_defaults_do_not_set`."""
    values = yaml.safe_load(reference_file("charts", chart, "values.yaml").read_text()) or {}
    return values.get("_internal_defaults_do_not_set", values)


#: A top-level key a values.yaml documents only in a comment (`#destinationResources:`), as the
#: Linkerd charts do for keys their templates read but that have no default.
COMMENTED_KEY = re.compile(r"^#\s?([A-Za-z][A-Za-z0-9]*):\s*$")


@functools.cache
def commented_keys(chart: str) -> frozenset[str]:
    """Top-level keys the pinned values.yaml documents in comments instead of setting them."""
    lines = reference_file("charts", chart, "values.yaml").read_text().splitlines()
    return frozenset(match.group(1) for line in lines if (match := COMMENTED_KEY.match(line)))


@functools.cache
def chart_schema(chart: str) -> dict[str, Any]:
    return json.loads(reference_file("charts", chart, "values.schema.json").read_text())


def value_paths(values: Mapping[str, Any], defaults: Any, prefix: str = "") -> Iterator[tuple[str, bool]]:
    """(path, known) for every key we set: known when the chart's values.yaml has it.

    Below a key whose default is an empty map (resources: {}, podAnnotations: {}), the chart
    takes any keys, so everything there counts as known.
    """
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if not isinstance(defaults, dict) or key not in defaults:
            yield path, False
            continue
        default = defaults[key]
        if isinstance(value, dict) and value and isinstance(default, dict) and default:
            yield from value_paths(value, default, path)
        else:
            yield path, True


def unknown_value_paths(values: Mapping[str, Any], chart: str, allowed: Mapping[str, str]) -> list[str]:
    """Paths we set that the pinned chart does not have (minus an allow-list, each with its reason).

    A top-level key the values.yaml documents in a comment counts as the chart's (below it any
    keys are taken, as the chart gives no shape to compare with).
    """
    for reason in allowed.values():
        assert reason.strip(), "every allow-listed value path needs its reason"
    documented = commented_keys(chart)
    return [
        path
        for path, known in value_paths(values, chart_values(chart))
        if not known and path not in allowed and path.split(".")[0] not in documented
    ]


def deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base.get(key), value)
        return merged
    return override


def schema_errors(values: Mapping[str, Any], chart: str) -> list[str]:
    """Helm's own check: the chart's defaults merged with our values, against values.schema.json."""
    raw_defaults = yaml.safe_load(reference_file("charts", chart, "values.yaml").read_text()) or {}
    document = deep_merge(raw_defaults, integral(schema.without_unknowns(dict(values))))
    chart_json_schema = chart_schema(chart)
    validator_class = jsonschema.validators.validator_for(chart_json_schema, default=jsonschema.Draft7Validator)
    validator = validator_class(chart_json_schema)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


# --- Kubernetes objects and custom resources ------------------------------------------------------


def integral(value: Any) -> Any:
    """Mocks hand numbers back as floats (9000.0); schemas typed integer want 9000."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def object_errors(resource: mockrun.PlannedResource) -> list[str]:
    """Schema errors of one object: Kubernetes OpenAPI for built-in kinds, the pinned CRD otherwise."""
    return crd_checked(lambda: list(schema.errors(integral(resource.inputs), KUBERNETES_VERSION)))


# --- Secrets ---------------------------------------------------------------------------------------


def plain_occurrences(value: Any, needles: tuple[str, ...], path: str = "") -> Iterator[str]:
    """Paths of string values that contain any of `needles`."""
    if isinstance(value, str):
        if any(needle in value for needle in needles):
            yield path or "<root>"
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from plain_occurrences(sub, needles, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from plain_occurrences(sub, needles, f"{path}[{index}]")


def covered(path: str, secret_paths: list[str]) -> bool:
    """True when `path` is a secret path or lies below one."""
    return any(
        path == secret or secret == "<root>" or path.startswith(secret + ".") or path.startswith(secret + "[")
        for secret in secret_paths
    )
