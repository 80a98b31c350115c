"""What a chart-installed workload runs: its containers, the resources and probes each one gets.

A CrossGuard pack never sees the objects of a helm.v3.Release (the Release is one resource; Helm
renders and applies its objects), and the offline plan renders no chart. So each component that
installs a chart declares, beside the values it passes, the workloads the chart renders with
those values: every container, the resources the values give it, and the probes the chart's
templates render for it. The declaration is a function of the values the Release or Chart
records (and the release name, which object names derive from), registered under the chart's
name with `@declares("<chart>")`.

The offline plan (deploy/plan.py) turns each Helm resource of the stack into the workloads its
declaration lists, and runs the pack's own rules on them, with the policy config's exemptions
(an exemption names the workload's metadata.name or namespace/name, as for any object): the
rules about what a declaration states, `DECLARED_POLICIES`. A chart with no declaration is
reported as uncovered. Tests compare each declaration with the pinned chart's values.yaml, so a
declaration cannot claim what the chart does not do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

#: The pack's rules a declaration states enough for (images and security contexts are not declared).
DECLARED_POLICIES = ("workload-probes", "cpu-requests", "memory-requests-limits", "probe-timings")
CHART_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")

WorkloadKind = Literal["Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob"]
_API_GROUPS = {"Deployment": "apps", "DaemonSet": "apps", "StatefulSet": "apps", "Job": "batch", "CronJob": "batch"}


def http_probe(path: str, port: int | str, scheme: Optional[str] = None, **timing: int) -> dict[str, Any]:
    """An httpGet probe as a chart renders it (timing keys in the API's camelCase)."""
    handler: dict[str, Any] = {"path": path, "port": port}
    if scheme:
        handler["scheme"] = scheme
    return {"httpGet": handler, **timing}


@dataclass(frozen=True)
class ChartContainer:
    """One container a chart renders, with what the values and templates give it."""

    name: str
    #: `resources` as rendered (None: the template renders none, or the values leave it empty).
    resources: Optional[Mapping[str, Any]] = None
    liveness_probe: Optional[Mapping[str, Any]] = None
    readiness_probe: Optional[Mapping[str, Any]] = None
    startup_probe: Optional[Mapping[str, Any]] = None
    #: Named ports the probes use, as the chart declares them: name -> containerPort.
    ports: Mapping[str, int] = field(default_factory=dict)
    init: bool = False
    #: A native sidecar: an init container with restartPolicy Always, running beside the others.
    sidecar: bool = False

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name}
        if self.sidecar:
            spec["restartPolicy"] = "Always"
        if self.resources:
            spec["resources"] = dict(self.resources)
        for key, probe in (
            ("livenessProbe", self.liveness_probe),
            ("readinessProbe", self.readiness_probe),
            ("startupProbe", self.startup_probe),
        ):
            if probe is not None:
                spec[key] = dict(probe)
        if self.ports:
            spec["ports"] = [{"name": name, "containerPort": port} for name, port in self.ports.items()]
        return spec


@dataclass(frozen=True)
class ChartWorkload:
    """One workload a chart renders."""

    kind: WorkloadKind
    name: str
    containers: Sequence[ChartContainer]
    #: None: the release's namespace.
    namespace: Optional[str] = None

    def props(self, release_namespace: Any) -> dict[str, Any]:
        pod = {
            "initContainers": [c.spec() for c in self.containers if c.init or c.sidecar],
            "containers": [c.spec() for c in self.containers if not (c.init or c.sidecar)],
        }
        template = {"metadata": {}, "spec": pod}
        spec: dict[str, Any] = {"template": template}
        if self.kind == "CronJob":
            spec = {"jobTemplate": {"spec": {"template": template}}}
        return {
            "apiVersion": f"{_API_GROUPS[self.kind]}/v1",
            "kind": self.kind,
            "metadata": {"name": self.name, "namespace": self.namespace or release_namespace},
            "spec": spec,
        }


@dataclass(frozen=True)
class ChartRelease:
    """What a declaration is given: the release's name (object names derive from it) and values."""

    name: str
    values: Mapping[str, Any]


Declaration = Callable[[ChartRelease], Sequence[ChartWorkload]]
_DECLARATIONS: dict[str, Declaration] = {}


def declares(chart: str) -> Callable[[Declaration], Declaration]:
    """Register `function(release) -> workloads` as what chart `chart` renders for a release."""

    def register(function: Declaration) -> Declaration:
        if chart in _DECLARATIONS and _DECLARATIONS[chart] is not function:
            raise ValueError(f"chart {chart!r} already has a workload declaration")
        _DECLARATIONS[chart] = function
        return function

    return register


def declaration(chart: str) -> Optional[Declaration]:
    return _DECLARATIONS.get(chart)


def declared_charts() -> frozenset[str]:
    return frozenset(_DECLARATIONS)


@dataclass(frozen=True)
class Coverage:
    """What the stack's charts run, as declared, and the charts that declare nothing."""

    #: Resources in the shape the policy engine takes ({"type", "name", "urn", "props"}).
    objects: list[dict[str, Any]] = field(default_factory=list)
    #: Pulumi names of Helm resources whose chart has no declaration.
    uncovered: list[str] = field(default_factory=list)


def _values(props: Mapping[str, Any]) -> Mapping[str, Any]:
    values = props.get("values")
    return values if isinstance(values, Mapping) else {}


def chart_objects(resources: Sequence[Mapping[str, Any]]) -> Coverage:
    """The declared workloads of every Helm Release or Chart among `resources` (type/name/urn/props)."""
    coverage = Coverage()
    for resource in resources:
        if resource["type"] not in CHART_TYPES:
            continue
        props = resource["props"]
        function = declaration(str(props.get("chart")))
        if function is None:
            coverage.uncovered.append(f"{resource['name']} (chart {props.get('chart')})")
            continue
        # A Release's `name` is the Helm release name; a v4 Chart without one uses its Pulumi name.
        release = ChartRelease(name=str(props.get("name") or resource["name"]), values=_values(props))
        coverage.objects.extend(_objects(resource, function(release)))
    return coverage


def _objects(resource: Mapping[str, Any], workloads: Sequence[ChartWorkload]) -> Iterator[dict[str, Any]]:
    namespace = resource["props"].get("namespace") or "default"
    for workload in workloads:
        token = f"kubernetes:{_API_GROUPS[workload.kind]}/v1:{workload.kind}"
        yield {
            "type": token,
            "name": f"{resource['name']}/{workload.name}",
            "urn": f"{resource['urn']}${token}::{workload.name}",
            "props": workload.props(namespace),
        }


def given(values: Mapping[str, Any], *path: str) -> Any:
    """values[path...], or None where any key on the way is missing."""
    node: Any = values
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def fullname(release: ChartRelease, chart: str) -> str:
    """Helm's usual `<chart>.fullname`: the release name when it contains the chart's, else both."""
    override = given(release.values, "fullnameOverride")
    if isinstance(override, str) and override:
        return override[:63].rstrip("-")
    name = given(release.values, "nameOverride") or chart
    full = release.name if name in release.name else f"{release.name}-{name}"
    return full[:63].rstrip("-")
