"""The pack's policies: name, description, default level, scope, properties and rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .config import Level, schema_of
from .kube import KubeObject
from .rules.autoscaling import check_hpa_targets
from .rules.availability import check_availability
from .rules.helm import check_chart_versions
from .rules.images import check_image_tags
from .rules.network import check_network_policies, check_open_load_balancers
from .rules.probes import check_probe_timings, check_probes
from .rules.resources import check_cpu_requests, check_memory
from .rules.security import check_container_security
from .rules.services import BALANCERS, check_load_balancer_services

ResourceCheck = Callable[[KubeObject, Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Sequence[KubeObject], Mapping[str, Any]], Iterable[tuple[KubeObject, str]]]


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    level: Level
    scope: Literal["resource", "stack"]
    #: A ResourceCheck for resource policies, a StackCheck for stack policies.
    check: ResourceCheck | StackCheck
    #: The policy's own properties (JSON Schema); exemptNamespaces/exemptResources are added.
    own_properties: Mapping[str, Mapping[str, Any]]

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        return schema_of(self.own_properties)


def _boolean(default: bool, description: str) -> dict[str, Any]:
    return {"type": "boolean", "default": default, "description": description}


POLICIES: tuple[Policy, ...] = (
    Policy(
        "workload-probes",
        "Every container of a Deployment, StatefulSet, DaemonSet, ReplicaSet or Pod has working liveness "
        "and readiness probes (exec, httpGet, tcpSocket or grpc).",
        "mandatory",
        "resource",
        check_probes,
        {},
    ),
    Policy(
        "cpu-requests",
        "Every container, init containers included, of every workload (Jobs and CronJobs too) requests CPU.",
        "mandatory",
        "resource",
        check_cpu_requests,
        {
            "acceptLimitAsRequest": _boolean(
                True, "Count a CPU limit without a request (Kubernetes then defaults the request to the limit)."
            )
        },
    ),
    Policy(
        "hpa-targets",
        "Every HorizontalPodAutoscaler scales a workload of this stack whose containers request CPU "
        "(and memory when it scales on memory).",
        "mandatory",
        "stack",
        check_hpa_targets,
        {},
    ),
    Policy(
        "memory-requests-limits",
        "Every container requests memory and sets a memory limit no lower than the request.",
        "advisory",
        "resource",
        check_memory,
        {"requireLimit": _boolean(True, "Require a memory limit as well as a request.")},
    ),
    Policy(
        "image-tags",
        "Container images are pinned: no :latest tag and no untagged image.",
        "advisory",
        "resource",
        check_image_tags,
        {"requireDigest": _boolean(False, "Require every image to be pinned by digest (@sha256:...).")},
    ),
    Policy(
        "production-availability",
        "In production, replicated workloads run at least minReplicas replicas and have a "
        "PodDisruptionBudget that still lets nodes drain.",
        "advisory",
        "stack",
        check_availability,
        {
            # No default: when unset, policy/__main__.py reads the stack's own scaleplane:production.
            "production": {
                "type": "boolean",
                "description": "Whether this stack is a production one (the rule applies only then).",
            },
            "minReplicas": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1000,
                "default": 2,
                "description": "Fewest replicas a production workload may run.",
            },
            "requireDisruptionBudget": _boolean(True, "Require a PodDisruptionBudget per replicated workload."),
        },
    ),
    Policy(
        "load-balancer-services",
        "LoadBalancer Services only as the stack's balancer can serve them.",
        "advisory",
        "resource",
        check_load_balancer_services,
        {
            # No default: when unset, policy/__main__.py reads the stack's own scaleplane:balancer
            # (and the rule falls back to cloud, the project's default).
            "balancer": {
                "type": "string",
                "enum": list(BALANCERS),
                "description": "The stack's balancer: metallb, aws-nlb, cloud or none.",
            },
            "allowedLoadBalancerClasses": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "default": [],
                "description": "Further spec.loadBalancerClass values a balancer of this cluster serves.",
            },
        },
    ),
    Policy(
        "probe-timings",
        "Probe timings make sense: timeouts shorter than periods, liveness no quicker to give up than readiness.",
        "advisory",
        "resource",
        check_probe_timings,
        {
            "minLivenessFailureSeconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": 3600,
                "default": 10,
                "description": "Least failureThreshold x periodSeconds a liveness probe may allow before a restart.",
            }
        },
    ),
    Policy(
        "container-security",
        "No privileged containers and no containers running as root.",
        "advisory",
        "resource",
        check_container_security,
        {
            "requireRunAsNonRoot": _boolean(
                True, "Flag containers that may run as root because nothing sets runAsNonRoot or a runAsUser."
            )
        },
    ),
    Policy(
        "network-policies",
        "Every workload's pods are selected by an ingress NetworkPolicy of their namespace.",
        "advisory",
        "stack",
        check_network_policies,
        {},
    ),
    Policy(
        "open-load-balancers",
        "In production, an internet-facing LoadBalancer Service sets loadBalancerSourceRanges "
        "(the ingress gateway, the one world-open entry point, goes in exemptResources).",
        "advisory",
        "resource",
        check_open_load_balancers,
        {
            # No defaults: when unset, policy/__main__.py reads the stack's own settings.
            "production": {
                "type": "boolean",
                "description": "Whether this stack is a production one (the rule applies only then).",
            },
            "balancer": {
                "type": "string",
                "enum": list(BALANCERS),
                "description": "The stack's balancer: metallb, aws-nlb, cloud or none.",
            },
        },
    ),
    Policy(
        "helm-chart-versions",
        "Helm releases and charts are pinned to an exact chart version.",
        "advisory",
        "resource",
        check_chart_versions,
        {"allowLocalCharts": _boolean(True, "Accept charts from a local directory without a version.")},
    ),
)

BY_NAME: Mapping[str, Policy] = {policy.name: policy for policy in POLICIES}
