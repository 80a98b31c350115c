"""Builders for the policy tests: Kubernetes objects shaped as the pack receives them.

Every builder makes a compliant object by default (it passes every rule), so a test changes the
one thing it is about. Resources are {"type", "name", "urn", "props"} mappings, as the offline
plan hands them to `evaluate`.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from policy.scaleplane_policy import Violation, evaluate  # noqa: E402

GROUP_VERSIONS = {
    "Pod": "core/v1",
    "ReplicationController": "core/v1",
    "Service": "core/v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
RESTRICTED = {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False}
_DEFAULT: Any = object()
#: Leave a field out altogether (None sets it to null).
MISSING: Any = object()


def probe(handler: str = "httpGet", **fields: Any) -> dict[str, Any]:
    """A working probe with the given handler; extra keyword arguments are timing fields."""
    handlers = {
        "httpGet": {"path": "/healthz", "port": 8080},
        "tcpSocket": {"port": 8080},
        "grpc": {"port": 9090},
        "exec": {"command": ["cat", "/tmp/healthy"]},
    }
    return {handler: handlers[handler], **fields}


def container(
    name: str = "app",
    image: str = "registry.example.com/app:1.2.3",
    *,
    cpu: Optional[str] = "100m",
    memory: Optional[str] = "128Mi",
    memory_limit: Optional[str] = "256Mi",
    liveness: Any = _DEFAULT,
    readiness: Any = _DEFAULT,
    security: Any = _DEFAULT,
    ports: Any = _DEFAULT,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "image": image}
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    limits = {"memory": memory_limit} if memory_limit is not None else {}
    spec["resources"] = {"requests": requests, "limits": limits}
    spec["ports"] = [{"name": "http", "containerPort": 8080}] if ports is _DEFAULT else ports
    for field, value in (("livenessProbe", liveness), ("readinessProbe", readiness)):
        if value is not MISSING:
            spec[field] = probe() if value is _DEFAULT else value
    spec["securityContext"] = dict(RESTRICTED) if security is _DEFAULT else security
    spec.update(extra)
    return spec


def init_container(name: str = "setup", **kwargs: Any) -> dict[str, Any]:
    """An ordinary init container: requests and security, no probes (the API refuses them)."""
    spec = container(name, **kwargs)
    spec.pop("livenessProbe", None)
    spec.pop("readinessProbe", None)
    spec.pop("ports", None)
    return spec


def pod_spec(
    *containers: dict[str, Any],
    init: Iterable[dict[str, Any]] = (),
    ephemeral: Iterable[dict[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers) or [container()]}
    if init:
        spec["initContainers"] = list(init)
    if ephemeral:
        spec["ephemeralContainers"] = list(ephemeral)
    spec.update(extra)
    return spec


def resource(kind_type: str, name: str, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind_type, "name": name, "urn": f"urn:pulumi:test::scaleplane::{kind_type}::{name}", "props": props}


def k8s(
    kind: str,
    name: str,
    namespace: Optional[str] = "apps",
    *,
    spec: Any = None,
    metadata: Optional[dict[str, Any]] = None,
    pulumi_name: Optional[str] = None,
) -> dict[str, Any]:
    api = GROUP_VERSIONS[kind]
    group, version = api.split("/")
    meta = {"name": name, **({"namespace": namespace} if namespace is not None else {}), **(metadata or {})}
    props: dict[str, Any] = {"apiVersion": version if group == "core" else api, "kind": kind, "metadata": meta}
    if spec is not None:
        props["spec"] = spec
    return resource(f"kubernetes:{api}:{kind}", pulumi_name or f"{name}-{kind.lower()}", props)


def workload(
    kind: str = "Deployment",
    name: str = "web",
    namespace: Optional[str] = "apps",
    *,
    pod: Optional[dict[str, Any]] = None,
    replicas: Optional[int] = None,
    labels: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """A workload of `kind` whose pods run `pod` (a compliant pod spec by default)."""
    pod = pod if pod is not None else pod_spec()
    labels = labels or {"app": name}
    if kind == "Pod":
        return k8s("Pod", name, namespace, spec=pod, metadata={"labels": labels})
    template = {"metadata": {"labels": labels}, "spec": pod}
    if kind == "CronJob":
        spec: dict[str, Any] = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        spec = {"selector": {"matchLabels": labels}, "template": template}
        if replicas is not None:
            spec["replicas"] = replicas
    return k8s(kind, name, namespace, spec=spec)


def hpa(
    name: str = "web",
    target: str = "web",
    namespace: Optional[str] = "apps",
    *,
    kind: str = "Deployment",
    api_version: str = "apps/v1",
    metrics: Any = _DEFAULT,
    min_replicas: Optional[int] = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target},
        "maxReplicas": 5,
    }
    if metrics is _DEFAULT:
        metrics = [cpu_metric()]
    if metrics is not None:
        spec["metrics"] = metrics
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return k8s("HorizontalPodAutoscaler", name, namespace, spec=spec)


def cpu_metric(resource_name: str = "cpu", utilization: int = 50) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {"name": resource_name, "target": {"type": "Utilization", "averageUtilization": utilization}},
    }


def container_metric(container_name: str, resource_name: str = "cpu") -> dict[str, Any]:
    return {
        "type": "ContainerResource",
        "containerResource": {
            "name": resource_name,
            "container": container_name,
            "target": {"type": "Utilization", "averageUtilization": 60},
        },
    }


def pdb(
    name: str = "web", namespace: Optional[str] = "apps", *, selector: Any = _DEFAULT, **spec: Any
) -> dict[str, Any]:
    body = {"selector": {"matchLabels": {"app": name}} if selector is _DEFAULT else selector, **spec}
    if "minAvailable" not in body and "maxUnavailable" not in body:
        body["maxUnavailable"] = 1
    return k8s("PodDisruptionBudget", name, namespace, spec=body)


def service(
    name: str = "web",
    namespace: Optional[str] = "apps",
    *,
    type_: str = "LoadBalancer",
    load_balancer_class: Optional[str] = None,
    annotations: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_, "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    if load_balancer_class is not None:
        spec["loadBalancerClass"] = load_balancer_class
    return k8s("Service", name, namespace, spec=spec, metadata={"annotations": annotations} if annotations else None)


def helm(kind: str, name: str, chart: Any, version: Any = _DEFAULT) -> dict[str, Any]:
    props: dict[str, Any] = {"chart": chart}
    if version is not _DEFAULT:
        props["version"] = version
    token = {"Release": "kubernetes:helm.sh/v3:Release", "Chart": "kubernetes:helm.sh/v4:Chart"}[kind]
    return resource(token, name, props)


def found(resources: Iterable[dict[str, Any]], policy: str, config: Any = None, **kwargs: Any) -> list[str]:
    """The messages `policy` reports on `resources`."""
    return [v.message for v in evaluate(resources, config, **kwargs) if v.policy == policy]


def violations(resources: Iterable[dict[str, Any]], config: Any = None, **kwargs: Any) -> list[Violation]:
    return evaluate(resources, config, **kwargs)


def with_(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `obj` with the dotted `path` (list indices as numbers) set to `value`."""
    result = copy.deepcopy(obj)
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    target: Any = result
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return result
