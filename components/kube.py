"""Small shared builders for Kubernetes objects: labels, resources, security, options, URLs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Optional, get_args

import pulumi
import pulumi_kubernetes as k8s

from settings.placement import Placement
from settings.workloads import Resources

MANAGED_BY = {"app.kubernetes.io/managed-by": "scaleplane"}

#: A Pod Security Standard level (https://kubernetes.io/docs/concepts/security/pod-security-standards/).
PodSecurityLevel = Literal["privileged", "baseline", "restricted"]
POD_SECURITY_LEVELS: tuple[str, ...] = get_args(PodSecurityLevel)
POD_SECURITY_PREFIX = "pod-security.kubernetes.io/"


def pod_security_labels(level: PodSecurityLevel) -> dict[str, str]:
    """The Pod Security admission labels of a namespace: enforce, audit and warn, all at `level`."""
    if level not in POD_SECURITY_LEVELS:
        raise ValueError(f"Pod Security level must be one of {', '.join(POD_SECURITY_LEVELS)}, not {level!r}")
    return {f"{POD_SECURITY_PREFIX}{mode}": level for mode in ("enforce", "audit", "warn")}


def app_labels(app: str, component: Optional[str] = None, **extra: str) -> dict[str, str]:
    """Selector-safe labels: `app` (what the playbook selects on) plus the recommended names."""
    labels = {"app": app, "app.kubernetes.io/name": app, **MANAGED_BY}
    if component:
        labels["app.kubernetes.io/component"] = component
    labels.update(extra)
    return labels


def resources(spec: Resources) -> dict[str, Any]:
    """Requests for CPU and memory, and a memory limit. No CPU limit: it only throttles."""
    return {
        "requests": {"cpu": spec.cpu_request, "memory": spec.memory_request},
        "limits": {"memory": spec.memory_limit},
    }


def restricted_security_context(user: int = 10001, read_only_root: bool = True) -> dict[str, Any]:
    """A container securityContext that meets the `restricted` Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def accepted_findings(**reasons: str) -> dict[str, str]:
    """Annotations recording a static-analysis finding accepted on purpose, with its reason
    (checkov reads `checkov.io/skipN: <check>=<reason>`): the exception and why stand on the object."""
    return {f"checkov.io/skip{index}": f"{check}={reason}" for index, (check, reason) in enumerate(reasons.items(), 1)}


def child_opts(
    parent: pulumi.Resource,
    provider: Optional[pulumi.ProviderResource],
    *,
    depends_on: Optional[Sequence[pulumi.Resource]] = None,
    **extra: Any,
) -> pulumi.ResourceOptions:
    """Options every child Kubernetes resource takes: its parent and the stack's provider."""
    return pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on or []), **extra)


def namespace(
    name: str,
    namespace_name: str,
    parent: pulumi.Resource,
    provider: pulumi.ProviderResource,
    *,
    pod_security: PodSecurityLevel,
    labels: Optional[Mapping[str, str]] = None,
    annotations: Optional[Mapping[str, str]] = None,
    holds_volumes: bool = False,
) -> k8s.core.v1.Namespace:
    """A namespace of ours, enforcing (and auditing and warning at) the Pod Security level
    `pod_security`: required, so no namespace is created without one. Say why beside any call
    that needs `privileged`. `labels` must not carry Pod Security labels of their own.

    One that `holds_volumes` is retained on delete: deleting a namespace deletes the volume
    claims in it, so `pulumi destroy` leaves it (and the data) in the cluster until someone
    deletes it on purpose."""
    clashing = sorted(key for key in labels or {} if key.startswith(POD_SECURITY_PREFIX))
    if clashing:
        raise ValueError(
            f"namespace {namespace_name!r}: labels {', '.join(clashing)} are set by pod_security=, not by labels"
        )
    return k8s.core.v1.Namespace(
        name,
        metadata={
            "name": namespace_name,
            "labels": {**MANAGED_BY, **(labels or {}), **pod_security_labels(pod_security)},
            "annotations": dict(annotations or {}),
        },
        opts=child_opts(parent, provider, retain_on_delete=holds_volumes),
    )


def priority_class(
    name: str, placement: Placement, app: str, parent: pulumi.Resource, provider: pulumi.ProviderResource
) -> list[pulumi.Resource]:
    """The PriorityClass a placement names, created for the workload that runs at it.

    Returns what the workload's pods must wait for: the priority admission plugin refuses pods
    whose priorityClassName does not exist yet (empty when the placement sets no priority).
    """
    spec = placement.priority_class
    if spec is None:
        return []
    created = k8s.scheduling.v1.PriorityClass(
        name,
        metadata={"name": spec.name, "labels": app_labels(app, "priority")},
        value=spec.value,
        preemption_policy=spec.preemption_policy,
        description=spec.description or f"Scheduling priority of {app}",
        global_default=False,
        opts=child_opts(parent, provider),
    )
    return [created]


def load_balancer_host(service: k8s.core.v1.Service) -> pulumi.Output[Optional[str]]:
    """The address the balancer reports: a hostname (AWS) or an IP (MetalLB); None while there is none."""

    def pick(status: Any) -> Optional[str]:
        balancer = getattr(status, "load_balancer", None)
        ingress = getattr(balancer, "ingress", None) or []
        if not ingress:
            return None
        return ingress[0].hostname or ingress[0].ip or None

    return service.status.apply(pick)


def load_balancer_url(service: k8s.core.v1.Service, scheme: str, port: int) -> pulumi.Output[Optional[str]]:
    """`scheme://host:port` from what the balancer reports: a hostname (AWS) or an IP (MetalLB).

    An IPv6 address is bracketed, as URLs require. None while the Service has no address (the
    Kubernetes provider waits for one on create).
    """

    def url(host: Optional[str]) -> Optional[str]:
        if not host:
            return None
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    return load_balancer_host(service).apply(url)
