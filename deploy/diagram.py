"""A picture of a stack: a Mermaid flowchart (Markdown, rendered by GitHub) of what the plan registered.

The cluster holds one box per namespace, labelled with the component that owns it; in each box the
workloads, Services, Helm charts, gateways and routes of that namespace. Every edge is derived
from the registered objects, nothing is drawn per stack:

- internet -> a LoadBalancer (or NodePort) Service: an exposed endpoint;
- Service -> the workloads its selector selects (pod template labels), or, when it selects none of
  the registered ones, the Helm charts of its namespace (whose pods the mocks do not render);
- Service -> an Istio Gateway whose selector selects the same pods; Gateway -> the VirtualServices
  bound to it; VirtualService -> the Services its routes send to;
- ingress controller (the chart whose IngressClass an Ingress names) -> Ingress -> backend
  Services; a Traefik IngressRoute likewise;
- workload -> Service, where a plain env value or an argument names the Service's DNS name
  (`mongodb`, `web-svc.emojivoto:80`, `http://x.minio-headless.minio.svc.cluster.local/`).

A route to a Service the program does not register (one a chart creates) goes to that Service by
name, drawn dashed. The output is sorted, so the same plan gives the same text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

from deploy import mockrun

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
EXPOSED_TYPES = ("LoadBalancer", "NodePort")


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    namespace: str
    shape: str = "rect"  # rect, service, chart, route, external

    def mermaid(self) -> str:
        text = self.label.replace('"', "'")
        return {
            "rect": f'{self.id}["{text}"]',
            "service": f'{self.id}(["{text}"])',
            "chart": f'{self.id}[["{text}"]]',
            "route": f'{self.id}{{{{"{text}"}}}}',
            "external": f'{self.id}(["{text}"]):::external',
        }[self.shape]


@dataclass
class Diagram:
    title: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)  # (from, to, label)
    owners: dict[str, str] = field(default_factory=dict)  # namespace -> owning component

    def add(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def edge(self, source: str, target: str, label: str = "") -> None:
        if source != target:
            self.edges.add((source, target, label))

    def mermaid(self) -> str:
        lines = ["flowchart LR", '  internet(("internet"))', f'  subgraph cluster["{self.title}"]']
        namespaces = sorted({node.namespace for node in self.nodes.values() if node.id != "internet"})
        for namespace in namespaces:
            owner = self.owners.get(namespace)
            heading = f"namespace {namespace}" + (f" ({owner})" if owner else "")
            lines.append(f'    subgraph {_id("ns", namespace)}["{heading}"]')
            for node in sorted(self.nodes.values(), key=lambda n: n.id):
                if node.namespace == namespace:
                    lines.append(f"      {node.mermaid()}")
            lines.append("    end")
        lines.append("  end")
        for source, target, label in sorted(self.edges):
            arrow = f"-- {label} -->" if label else "-->"
            if self.nodes.get(target, Node("", "", "")).shape == "external":
                arrow = f"-. {label} .->" if label else "-.->"
            lines.append(f"  {source} {arrow} {target}")
        lines.append("  classDef external stroke-dasharray: 4 4")
        return "\n".join(lines)


def _id(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9]", "_", part) for part in parts)


def _meta(obj: dict[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or "default"), str(metadata.get("name") or "")


def _selects(selector: Optional[dict[str, Any]], labels: Optional[dict[str, Any]]) -> bool:
    return bool(selector) and all((labels or {}).get(key) == value for key, value in (selector or {}).items())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _plain_references(pod_spec: dict[str, Any]) -> Iterator[str]:
    """Plain env values, args and commands of a pod's containers (never a secret's value)."""
    for container in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
        for env in container.get("env") or []:
            if isinstance(env.get("value"), str):
                yield env["value"]
        yield from _strings(container.get("args") or [])
        yield from _strings(container.get("command") or [])


def names_service(text: str, name: str, namespace: str, own_namespace: str) -> bool:
    """Whether `text` addresses Service `name` in `namespace` by its DNS name (from `own_namespace`)."""
    qualified = re.compile(
        rf"(?:^|[./@])({re.escape(name)}\.{re.escape(namespace)}(?:\.svc(?:\.cluster\.local)?)?)(?=$|[:/])"
    )
    if qualified.search(text):
        return True
    if namespace != own_namespace:
        return False
    bare = re.escape(name)
    return (
        re.fullmatch(bare, text) is not None or re.search(rf"(?:://|@){bare}(?=$|[:/])|^{bare}:\d+$", text) is not None
    )


class Builder:
    """Turns a plan's registered resources into a Diagram."""

    def __init__(self, result: mockrun.PlanResult):
        self.result = result
        self.objects = [r for r in result.resources if r.is_kubernetes_object]
        by_urn = {r.urn: r for r in result.resources}
        cluster = next((r for r in result.resources if r.type.startswith("scaleplane:cluster:")), None)
        title = f"{cluster.type.rsplit(':', 1)[-1]} {cluster.name}" if cluster else f"cluster of {result.stack}"
        self.diagram = Diagram(title=title)
        self.diagram.add(Node("internet", "internet", ""))
        self.by_urn = by_urn
        self.services: dict[tuple[str, str], str] = {}
        self.charts: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def component(self, resource: mockrun.PlannedResource) -> Optional[str]:
        """The nearest scaleplane component above a resource: `TodoApp prod-todo`."""
        parent = self.by_urn.get(resource.parent)
        while parent is not None:
            if parent.type.startswith("scaleplane:"):
                return f"{parent.type.rsplit(':', 1)[-1]} {parent.name}"
            parent = self.by_urn.get(parent.parent)
        return None

    def build(self) -> Diagram:
        diagram = self.diagram
        for resource in self.result.resources:
            if resource.type.startswith("kubernetes:helm.sh/"):
                namespace = str(resource.inputs.get("namespace") or "default")
                chart = str(resource.inputs.get("chart") or resource.name)
                node = diagram.add(Node(_id("chart", namespace, resource.name), f"chart {chart}", namespace, "chart"))
                self.charts.setdefault(namespace, []).append((node, resource.inputs))
        for resource in self.objects:
            obj = resource.inputs
            namespace, name = _meta(obj)
            kind = obj.get("kind")
            if kind == "Namespace":
                owner = self.component(resource)
                if owner:
                    diagram.owners[name] = owner
            elif kind == "Service":
                spec = obj.get("spec") or {}
                exposed = spec.get("type") in EXPOSED_TYPES
                label = f"Service {name}" + (f" ({spec['type']})" if exposed else "")
                self.services[(namespace, name)] = diagram.add(
                    Node(_id("svc", namespace, name), label, namespace, "service")
                )
            elif kind in WORKLOAD_KINDS:
                diagram.add(Node(_id("wl", namespace, name), f"{kind} {name}", namespace))
            elif kind in ("Gateway", "VirtualService", "Ingress", "IngressRoute"):
                diagram.add(Node(_id(kind, namespace, name), f"{kind} {name}", namespace, "route"))
        for resource in self.objects:
            self.connect(resource.inputs)
        return diagram

    def service(self, namespace: str, name: str) -> str:
        """The node of Service namespace/name: registered, or one a chart creates (drawn dashed)."""
        found = self.services.get((namespace, name))
        if found is not None:
            return found
        node = self.diagram.add(Node(_id("svc", namespace, name), f"Service {name}", namespace, "external"))
        for chart, _ in self.charts.get(namespace, []):
            self.diagram.edge(node, chart)
        return node

    def connect(self, obj: dict[str, Any]) -> None:
        diagram = self.diagram
        namespace, name = _meta(obj)
        kind, spec = obj.get("kind"), obj.get("spec") or {}
        if kind == "Service":
            node = self.services[(namespace, name)]
            if spec.get("type") in EXPOSED_TYPES:
                diagram.edge("internet", node, ", ".join(str(p.get("port")) for p in spec.get("ports") or []))
            targets = [
                _id("wl", ns, other_name)
                for ns, other_name, labels in self.pods()
                if ns == namespace and _selects(spec.get("selector"), labels)
            ]
            if not targets and spec.get("selector"):
                targets = [chart for chart, _ in self.charts.get(namespace, [])]
            for target in targets:
                diagram.edge(node, target)
        elif kind == "Gateway":
            for (service_namespace, service_name), node in self.services.items():
                service_selector = (self.service_spec(service_namespace, service_name) or {}).get("selector")
                if _selects(spec.get("selector"), service_selector):
                    diagram.edge(node, _id("Gateway", namespace, name))
        elif kind == "VirtualService":
            for gateway in spec.get("gateways") or []:
                gateway_namespace, gateway_name = _gateway_ref(str(gateway), namespace)
                if _id("Gateway", gateway_namespace, gateway_name) in diagram.nodes:
                    diagram.edge(_id("Gateway", gateway_namespace, gateway_name), _id(kind, namespace, name))
            for route in [*(spec.get("http") or []), *(spec.get("tcp") or []), *(spec.get("tls") or [])]:
                for destination in route.get("route") or []:
                    host = str((destination.get("destination") or {}).get("host", ""))
                    service_name, _, rest = host.partition(".")
                    target_namespace = rest.split(".", 1)[0] if rest else namespace
                    diagram.edge(_id(kind, namespace, name), self.service(target_namespace, service_name))
        elif kind == "Ingress":
            node = _id(kind, namespace, name)
            for controller in self.controllers(spec.get("ingressClassName")):
                diagram.edge(controller, node)
            backends = [spec.get("defaultBackend") or {}]
            for rule in spec.get("rules") or []:
                backends += [path.get("backend") or {} for path in (rule.get("http") or {}).get("paths") or []]
            for backend in backends:
                if (backend.get("service") or {}).get("name"):
                    diagram.edge(node, self.service(namespace, backend["service"]["name"]))
        elif kind == "IngressRoute":
            node = _id(kind, namespace, name)
            group = str(obj.get("apiVersion", "")).split(".", 1)[0]
            for controller in self.controllers(group):
                diagram.edge(controller, node)
            for route in spec.get("routes") or []:
                for target in route.get("services") or []:
                    if target.get("kind", "Service") == "Service" and target.get("name"):
                        diagram.edge(node, self.service(str(target.get("namespace") or namespace), target["name"]))
        elif kind in WORKLOAD_KINDS:
            pod_spec = ((spec.get("template") or {}).get("spec")) or {}
            source = _id("wl", namespace, name)
            for text in _plain_references(pod_spec):
                for service_namespace, service_name in self.services:
                    if names_service(text, service_name, service_namespace, namespace):
                        diagram.edge(source, self.services[(service_namespace, service_name)])

    def pods(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for resource in self.objects:
            if resource.inputs.get("kind") in WORKLOAD_KINDS:
                namespace, name = _meta(resource.inputs)
                template = (resource.inputs.get("spec") or {}).get("template") or {}
                yield namespace, name, (template.get("metadata") or {}).get("labels") or {}

    def service_spec(self, namespace: str, name: str) -> Optional[dict[str, Any]]:
        for resource in self.objects:
            if resource.inputs.get("kind") == "Service" and _meta(resource.inputs) == (namespace, name):
                return resource.inputs.get("spec") or {}
        return None

    def controllers(self, name: Optional[str]) -> list[str]:
        """Charts that serve an IngressClass (or CRD group) `name`: by chart name or ingressClass value."""
        if not name:
            return []
        found = []
        for charts in self.charts.values():
            for node, inputs in charts:
                ingress_class = ((inputs.get("values") or {}).get("ingressClass") or {}).get("name")
                if name in (inputs.get("chart"), ingress_class):
                    found.append(node)
        return sorted(found)


def _gateway_ref(reference: str, namespace: str) -> tuple[str, str]:
    """An Istio gateway reference: `ns/name`, `name.ns[.svc.cluster.local]` or `name` (same namespace)."""
    if "/" in reference:
        gateway_namespace, _, name = reference.partition("/")
        return gateway_namespace, name
    name, _, rest = reference.partition(".")
    return (rest.split(".", 1)[0] if rest else namespace), name


def mermaid(result: mockrun.PlanResult) -> str:
    """The stack's flowchart, as Mermaid source."""
    return Builder(result).build().mermaid()


def markdown(result: mockrun.PlanResult) -> str:
    """diagram.md: a heading and the flowchart in a ```mermaid block (GitHub renders it)."""
    return (
        f"# Stack {result.stack}\n\n"
        "What the offline plan registered: namespaces (with the component that owns each), workloads,\n"
        "Services, Helm charts, gateways and routes, and the traffic between them. Dashed: a Service a\n"
        "chart creates, which the plan does not see.\n\n"
        f"```mermaid\n{mermaid(result)}\n```\n"
    )


#: README.md shows the prod stack's diagram between these markers; a test keeps it current.
README_STACK = "prod"
README_BEGIN = f"<!-- diagram of the {README_STACK} stack: written by `python -m deploy.diagram` -->"
README_END = "<!-- end of diagram -->"


def readme_block(result: mockrun.PlanResult) -> str:
    return f"{README_BEGIN}\n```mermaid\n{mermaid(result)}\n```\n{README_END}"


def replace_readme_block(readme: str, result: mockrun.PlanResult) -> str:
    start, end = readme.index(README_BEGIN), readme.index(README_END) + len(README_END)
    return readme[:start] + readme_block(result) + readme[end:]


if __name__ == "__main__":
    # Rewrite README.md's copy of the prod diagram from the current program.
    from deploy.project import PROJECT_DIR

    readme_path = PROJECT_DIR / "README.md"
    readme_path.write_text(replace_readme_block(readme_path.read_text(), mockrun.run_stack(README_STACK)))
    print(f"{readme_path}: the {README_STACK} diagram is current")
