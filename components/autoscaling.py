"""Autoscaling and disruption budgets: an autoscaling/v2 HPA and the PDB that keeps it safe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import child_opts
from settings.workloads import AutoscalingSettings, ScalingBehavior


def _behavior(direction: ScalingBehavior) -> dict[str, Any]:
    return {
        "stabilizationWindowSeconds": direction.stabilization_window_seconds,
        # The larger of the two policies wins, so small workloads still move a pod at a time.
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": direction.percent, "periodSeconds": direction.period_seconds},
            {"type": "Pods", "value": direction.pods, "periodSeconds": direction.period_seconds},
        ],
    }


def _utilization(resource: str, percent: int, container: Optional[str]) -> dict[str, Any]:
    target = {"type": "Utilization", "averageUtilization": percent}
    if container is None:
        return {"type": "Resource", "resource": {"name": resource, "target": target}}
    return {
        "type": "ContainerResource",
        "containerResource": {"name": resource, "container": container, "target": target},
    }


def hpa_spec(
    target_kind: str, target_name: str, scaling: AutoscalingSettings, container: Optional[str] = None
) -> dict[str, Any]:
    """autoscaling/v2 spec: cpu (optionally memory) at average Utilization.

    Resource metrics (the playbook's) divide the usage of all of a pod's containers by their
    requests; with `container`, ContainerResource metrics measure that container alone.
    """
    metrics = [_utilization("cpu", scaling.target_cpu_utilization, container)]
    if scaling.target_memory_utilization is not None:
        metrics.append(_utilization("memory", scaling.target_memory_utilization, container))
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": target_name},
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": metrics,
        "behavior": {"scaleUp": _behavior(scaling.scale_up), "scaleDown": _behavior(scaling.scale_down)},
    }


def pod_disruption_budget(
    resource_name: str,
    name: str,
    namespace: pulumi.Input[str],
    selector: Mapping[str, str],
    parent: pulumi.Resource,
    provider: k8s.Provider,
    *,
    depends_on: Optional[list[pulumi.Resource]] = None,
) -> k8s.policy.v1.PodDisruptionBudget:
    """At most one pod of `selector` voluntarily disrupted at a time.

    maxUnavailable (not minAvailable) so a workload scaled down to one pod never blocks a node
    drain; AlwaysAllow so pods that are already unhealthy never block one either.
    """
    return k8s.policy.v1.PodDisruptionBudget(
        resource_name,
        metadata={"name": name, "namespace": namespace, "labels": dict(selector)},
        spec={
            "maxUnavailable": 1,
            "selector": {"matchLabels": dict(selector)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
        opts=child_opts(parent, provider, depends_on=depends_on),
    )


@dataclass(frozen=True)
class AutoscalerArgs:
    #: The Deployment (or StatefulSet) to scale; it must set CPU requests, or the HPA cannot work.
    target_name: str
    namespace: pulumi.Input[str]
    scaling: AutoscalingSettings
    target_kind: str = "Deployment"
    #: Scale on this container's usage alone (ContainerResource): for pods with an injected mesh
    #: proxy, whose requests the HPA would otherwise need (Linkerd's proxy requests no CPU, so a
    #: Resource metric could not be computed at all) and whose usage would skew the average.
    container: Optional[str] = None


class Autoscaler(pulumi.ComponentResource):
    """A HorizontalPodAutoscaler (autoscaling/v2) for one workload, as the playbook's recipe 1."""

    hpa: k8s.autoscaling.v2.HorizontalPodAutoscaler
    name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: AutoscalerArgs,
        provider: k8s.Provider,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        if args.target_kind not in ("Deployment", "StatefulSet"):
            raise ValueError(f"AutoscalerArgs.target_kind must be Deployment or StatefulSet, got {args.target_kind!r}")
        if args.scaling.min_replicas > args.scaling.max_replicas:
            raise ValueError("AutoscalerArgs.scaling: minReplicas must not exceed maxReplicas")
        super().__init__("scaleplane:workloads:Autoscaler", name, None, opts)
        self.hpa = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata={"name": args.target_name, "namespace": args.namespace},
            spec=hpa_spec(args.target_kind, args.target_name, args.scaling, args.container),
            opts=child_opts(self, provider),
        )
        self.name = self.hpa.metadata.name
        self.register_outputs({"name": self.name})
