"""Schema checks for rendered objects: Kubernetes OpenAPI for built-in kinds, CRDs for the rest."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils
from referencing import Registry, Resource

from deploy import reference
from deploy.mockrun import UNKNOWN

#: The C YAML loader when PyYAML was built with libyaml (CRDs are large: about 10x faster).
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SchemaUnavailableError(Exception):
    """The pinned CRD of a custom resource is in neither the reference set nor the cache, and
    upstream cannot be reached: the object could not be checked (which is not the same as invalid)."""

    def __init__(self, kind: str, group: str, reason: str):
        super().__init__(f"{kind}.{group}: {reason}")
        self.kind, self.group, self.reason = kind, group, reason


def without_unknowns(value: Any) -> Any:
    """Drop values only a real deploy knows, so the schema judges what the program did set."""
    if isinstance(value, dict):
        return {k: without_unknowns(v) for k, v in value.items() if v != UNKNOWN}
    if isinstance(value, list):
        return [without_unknowns(v) for v in value if v != UNKNOWN]
    return value


def _where(path: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "<root>"


@functools.cache
def _crds(crd_dir: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(group, kind) -> CRD document, for every CRD file under crd_dir."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    root = Path(crd_dir)
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*.yaml")):
        found.update(_crd_documents(path))
    return found


@functools.cache
def _crd_documents(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for document in yaml.load_all(path.read_text(), Loader=YAML_LOADER):
        if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
            spec = document["spec"]
            found[(spec["group"], spec["names"]["kind"])] = document
    return found


def pinned_crd(group: str, kind: str) -> Optional[dict[str, Any]]:
    """The pinned CRD of group/kind (`crds/<group>/<Kind>.yaml` of the reference manifest), found or
    fetched; None when the manifest pins none. SchemaUnavailableError when it pins one that cannot be had."""
    relative = f"crds/{group}/{kind}.yaml"
    if relative not in reference.manifest():
        return None
    path = reference.file(relative)
    if path is None:
        raise SchemaUnavailableError(kind, group, reference.unavailable_reason(relative))
    return _crd_documents(path).get((group, kind))


def crd_schema(api_version: str, kind: str, crd_dir: Optional[Path] = None) -> Optional[dict[str, Any]]:
    """The openAPIV3Schema of a served CRD version, or None when no pinned CRD covers it.

    `crd_dir`: read the CRDs under that directory instead of the pinned ones."""
    group, _, version = api_version.rpartition("/")
    crd = _crds(str(crd_dir)).get((group, kind)) if crd_dir is not None else pinned_crd(group, kind)
    if crd is None:
        return None
    for served in crd["spec"]["versions"]:
        if served["name"] == version and served.get("served", False):
            return served["schema"]["openAPIV3Schema"]
    raise ValueError(f"{kind}.{group} serves no version {version!r} in the pinned CRD")


def _strict(schema: Any) -> Any:
    """CRD structural schemas prune unknown fields; treat them as errors instead."""
    if isinstance(schema, dict):
        strict = {k: _strict(v) for k, v in schema.items()}
        if strict.get("type") == "object" and "properties" in strict and "additionalProperties" not in strict:
            if not strict.get("x-kubernetes-preserve-unknown-fields"):
                strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def builtin_validator(api_version: str, kind: str, kubernetes_version: str) -> Optional[jsonschema.Validator]:
    """The strict validator of a built-in kind, as `kubernetes_validate.validate(..., strict=True)`
    builds it, built once: that function reads and parses the 1 MB `_definitions.json` and builds a
    fresh registry on every call (most of a plan's validation time). None when the kind is not one of
    that Kubernetes version's (a custom resource)."""
    version = kubernetes_version.removeprefix("v")
    if utils.major_minor(version) > utils.latest_version():
        raise kubernetes_validate.VersionNotSupportedError(version=utils.major_minor(version))
    schema_version = [v for v in utils.all_versions() if utils.major_minor(v) <= utils.major_minor(version)][-1]
    # rbac.authorization.k8s.io/v1 -> rbac-v1, as kubernetes_validate names its schema files.
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema_dir = f"v{schema_version}-local-strict"
    try:
        schema = utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{api}.json", version)
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(schema) @ _definitions(schema_dir, version)
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


@functools.cache
def _definitions(schema_dir: str, version: str) -> Registry:
    definitions = utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version)
    return Resource.from_contents(definitions) @ Registry()


@functools.cache
def _crd_validator(api_version: str, kind: str, crd_dir: Optional[Path]) -> Optional[jsonschema.Validator]:
    schema = crd_schema(api_version, kind, crd_dir)
    if schema is None:
        return None
    return jsonschema.Draft7Validator(
        _strict(
            {
                **schema,
                "properties": {
                    k: v for k, v in schema.get("properties", {}).items() if k not in ("apiVersion", "kind", "metadata")
                },
                # metadata is checked by the API server, not here (some CRDs list it as required).
                "required": [k for k in schema.get("required", []) if k not in ("apiVersion", "kind", "metadata")],
            }
        )
    )


def errors(obj: dict[str, Any], kubernetes_version: str, crd_dir: Optional[Path] = None) -> Iterator[str]:
    """Every schema error in one object; nothing for a valid object.

    Built-in kinds: the Kubernetes OpenAPI schema of that minor version, strict (unknown fields
    are errors; the first error, as kubernetes_validate reports it). Custom resources: the pinned
    CRD's schema, likewise strict; SchemaUnavailableError when that CRD cannot be had (no reference
    set, no cache, no network).
    """
    obj = without_unknowns(obj)
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    builtin = builtin_validator(api_version, kind, kubernetes_version)
    if builtin is not None:
        error = next(iter(builtin.iter_errors(obj)), None)
        if error is not None:
            yield f"{_where(error.path)}: {error.message}"
        return
    validator = _crd_validator(api_version, kind, crd_dir)
    if validator is None:
        yield f"no schema for {kind} {api_version} (not a Kubernetes {kubernetes_version} kind, no pinned CRD)"
        return
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.path)):
        yield f"{_where(error.path)}: {error.message}"
