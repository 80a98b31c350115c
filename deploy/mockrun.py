"""Run the Pulumi program under mocks and record every resource it registers.

Used by the offline plan (`python -m deploy plan`) and by the tests. Nothing here talks to a
cloud, a cluster or the Pulumi CLI: the mock monitor answers every registration with the
resource's own inputs plus the few outputs listed in `MOCK_OUTPUTS`. In preview mode (the
plan's default), everything else a provider would compute stays unknown.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from deploy.project import PROJECT_DIR, project_file, stack_config

UNKNOWN = "<unknown: known after deploy>"

#: Fake provider-computed outputs, by resource type: f(name, inputs) -> extra outputs.
#: Only outputs a real provider would return belong here (ids, ARNs, generated names), never
#: values the program itself should have set.
MOCK_OUTPUTS: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {}
#: Fake invoke results, by function token: f(args) -> result.
MOCK_CALLS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass
class PlannedResource:
    """One registered resource: what the program asked for, with its options."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    provider: str
    inputs: dict[str, Any]
    #: Dotted paths of inputs that are secret (a secret's value is never printed).
    secret_paths: list[str]
    protect: bool
    retain_on_delete: bool
    dependencies: list[str]
    ignore_changes: list[str]
    delete_before_replace: bool

    @property
    def is_kubernetes_object(self) -> bool:
        """A plain Kubernetes object (not a provider, chart or yaml component)."""
        return (
            self.type.startswith("kubernetes:")
            and not self.type.startswith("kubernetes:helm.sh/")
            and not self.type.startswith("kubernetes:yaml")
            and self.type.count(":") == 2
        )


@dataclass
class PlanResult:
    stack: str
    resources: list[PlannedResource]
    #: Stack outputs: plain values, UNKNOWN, or the SecretOutput marker for secrets.
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, type_: str, name: str) -> PlannedResource:
        matches = [r for r in self.resources if r.type == type_ and r.name == name]
        if len(matches) != 1:
            raise KeyError(f"expected one {type_} named {name}, found {len(matches)}")
        return matches[0]


def _plain(value: Any, path: str, secrets: list[str]) -> Any:
    """Strip Pulumi's wire markers: unknowns become UNKNOWN, secrets are unwrapped and noted."""
    if isinstance(value, pulumi.output.Unknown):
        return UNKNOWN
    if rpc.is_rpc_secret(value):
        secrets.append(path or "<root>")
        return _plain(rpc.unwrap_rpc_secret(value), path, secrets)
    if isinstance(value, dict):
        return {k: _plain(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        # Pulumi's wire format carries every number as a double; the program wrote an integer
        # (a port, a replica count), and Kubernetes' int32 fields refuse "80.0".
        return int(value)
    return value


class RecordingMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[Optional[str], dict]:
        outputs = dict(args.inputs)
        fake = MOCK_OUTPUTS.get(args.typ)
        if fake is not None:
            outputs.update(fake(args.name, args.inputs))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        fake = MOCK_CALLS.get(args.token)
        if fake is None:
            raise NotImplementedError(f"the offline plan has no answer for invoke {args.token}")
        return fake(args.args)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps each registration's inputs with secrets marked, and options."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.planned: list[PlannedResource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            secrets: list[str] = []
            inputs = _plain(rpc.deserialize_properties(request.object, keep_unknowns=True), "", secrets)
            self.planned.append(
                PlannedResource(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    custom=bool(request.custom),
                    parent=request.parent,
                    provider=request.provider,
                    inputs=inputs,
                    secret_paths=secrets,
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    dependencies=list(request.dependencies),
                    ignore_changes=list(request.ignoreChanges),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                )
            )
        return response


class SecretOutput:
    """Marks a stack output that is secret; its value is never kept."""

    def __repr__(self) -> str:
        return "<secret>"


def _resolve_outputs(stack_resource: Any) -> tuple[dict[str, Any], set[str]]:
    resolved: dict[str, Any] = {}
    secret: set[str] = set()
    for key, value in getattr(stack_resource, "outputs", {}).items():
        output = pulumi.Output.from_input(value)
        known = _sync_await(output.is_known())
        if _sync_await(output.is_secret()):
            secret.add(key)
            resolved[key] = SecretOutput() if known else UNKNOWN
            continue
        resolved[key] = _plain(_sync_await(output.future()), "", []) if known else UNKNOWN
    return resolved, secret


def run(
    stack: str,
    config: dict[str, str],
    program: Callable[[], None],
    *,
    preview: bool = True,
    project: Optional[str] = None,
) -> PlanResult:
    """Run `program` as stack `stack` with raw config `config`, under recording mocks."""
    project = project or project_file()["name"]
    set_all_config(config, [])
    pulumi_settings.ROOT.set(None)
    monitor = RecordingMonitor(RecordingMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(program))
    outputs, secret = _resolve_outputs(pulumi_settings.get_root_resource())
    return PlanResult(stack=stack, resources=monitor.planned, outputs=outputs, secret_outputs=secret)


def run_stack(stack: str, *, preview: bool = True, project_dir: Path = PROJECT_DIR) -> PlanResult:
    """Run the project's own `__main__.py` with a stack's real configuration."""
    config = stack_config(stack, project_dir)
    main = str(project_dir / "__main__.py")
    return run(stack, config, lambda: runpy.run_path(main, run_name="__pulumi_main__"), preview=preview)
