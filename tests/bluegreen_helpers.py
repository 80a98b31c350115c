"""Shared by the storage and blue/green tests: stack config with database sections, runs, schemas."""

from __future__ import annotations

import functools
import json
import runpy
from pathlib import Path
from typing import Any, Optional

import jsonschema
import kubernetes_validate
import pulumi
import pulumi_kubernetes as k8s
import yaml
from support import reference_file

import settings
from components.bluegreen import BlueGreenDatabase, BlueGreenDatabaseArgs
from components.storage import SnapshotStorage, SnapshotStorageArgs
from deploy import mockrun
from deploy.project import PROJECT_DIR, stack_config

BLUE_IMAGE = "docker.io/percona/percona-server:8.0.43-34"
GREEN_IMAGE = "docker.io/percona/percona-server:8.0.46-37.1"
#: RandomPassword.result is computed by the provider: the mocks answer with a recognisable fake.
mockrun.MOCK_OUTPUTS.setdefault(
    "random:index/randomPassword:RandomPassword", lambda name, inputs: {"result": f"fake-password-of-{name}"}
)

LOADGEN_IMAGE = "docker.io/openebs/tests-mysql-client@sha256:" + "0" * 63 + "1"


def raw_config(
    database: Optional[dict[str, Any]],
    storage: Optional[dict[str, Any]] = None,
    stack: str = "local",
) -> dict[str, str]:
    """The stack's real config with the database and storage sections replaced (None: removed)."""
    raw = dict(stack_config(stack))
    raw.pop("scaleplane:database", None)
    if database is not None:
        raw["scaleplane:database"] = json.dumps(database)
    if storage is not None:
        raw["scaleplane:storage"] = json.dumps(storage)
    return raw


def run_components(raw: dict[str, str], *, preview: bool = False) -> mockrun.PlanResult:
    """Only the storage and database components, built from `raw` as __main__ builds them."""
    config = settings.from_config(raw)
    assert config.storage is not None

    def program() -> None:
        provider = k8s.Provider("test-provider", kubeconfig="unused-under-mocks", context="test")
        storage = SnapshotStorage("storage", SnapshotStorageArgs(settings=config.storage), provider)
        if config.database is not None:
            database = BlueGreenDatabase(
                "database",
                BlueGreenDatabaseArgs(
                    settings=config.database,
                    storage_class_name=storage.storage_class_name,
                    snapshot_class_name=storage.snapshot_class_name,
                ),
                provider,
            )
            pulumi.export("databaseHost", database.host)

    return mockrun.run("test", raw, program, preview=preview, project="scaleplane")


def run_program(raw: dict[str, str], stack: str = "local") -> mockrun.PlanResult:
    """The whole program (__main__.py) with `raw` as its stack config."""
    main = str(PROJECT_DIR / "__main__.py")
    return mockrun.run(stack, raw, lambda: runpy.run_path(main, run_name="__pulumi_main__"), preview=True)


def kube_objects(result: mockrun.PlanResult, kind: Optional[str] = None) -> list[mockrun.PlannedResource]:
    return [r for r in result.resources if r.is_kubernetes_object and (kind is None or r.inputs.get("kind") == kind)]


def one(result: mockrun.PlanResult, kind: str, name: Optional[str] = None) -> mockrun.PlannedResource:
    found = [r for r in kube_objects(result, kind) if name is None or r.inputs["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@functools.cache
def crd_schema(group: str, kind: str) -> dict[str, Any]:
    crd = yaml.safe_load(reference_file("crds", group, f"{kind}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    return {"group": group, "version": version["name"], "schema": version["schema"]["openAPIV3Schema"]}


def validate_object(obj: dict[str, Any]) -> None:
    """Kubernetes 1.34 schema for built-in kinds; the pinned CRD's schema for snapshot kinds."""
    group, _, version = obj["apiVersion"].rpartition("/")
    if group == "snapshot.storage.k8s.io":
        reference = crd_schema(group, obj["kind"])
        assert version == reference["version"], f"{obj['kind']} {version} is not the CRD's served version"
        jsonschema.validate(obj, reference["schema"])
        unknown = set(obj) - set(reference["schema"]["properties"])
        assert not unknown, f"{obj['kind']} has fields the CRD does not define: {unknown}"
        return
    kubernetes_validate.validate(obj, "1.34", strict=True)


@functools.cache
def chart_defaults(chart: str) -> dict[str, Any]:
    return yaml.safe_load(reference_file("charts", chart, "values.yaml").read_text()) or {}


def unknown_value_paths(values: dict[str, Any], chart: str) -> list[str]:
    """Dotted paths we set that the pinned chart's values.yaml does not have.

    An empty map in the chart's values (`resources: {}`, `podLabels: {}`) takes any keys.
    """

    def leaves(node: Any, prefix: str) -> list[str]:
        if isinstance(node, dict) and node:
            return [p for key, value in node.items() for p in leaves(value, f"{prefix}.{key}" if prefix else key)]
        return [prefix]

    missing = []
    for path in leaves(values, ""):
        node: Any = chart_defaults(chart)
        for part in path.split("."):
            if node == {}:
                break
            if not isinstance(node, dict) or part not in node:
                missing.append(path)
                break
            node = node[part]
    return missing


def reference_path(*parts: str) -> Path:
    return reference_file(*parts)
