"""Metrics Server: the resource-metrics API that `kubectl top` and every CPU/memory HPA read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.chart_workloads import ChartContainer, ChartRelease, ChartWorkload, declares, fullname, given
from components.network import API_SERVER, allow_ingress

CHART_REPOSITORY = "https://kubernetes-sigs.github.io/metrics-server/"
#: The port metrics-server serves the resource-metrics API on (the chart's containerPort).
SECURE_PORT = 10250
#: The chart's selector label (app.kubernetes.io/name is the chart's name: no nameOverride here).
POD_SELECTOR = {"app.kubernetes.io/name": "metrics-server"}


#: The chart's defaults the declaration relies on (values.yaml; tests compare them with the pinned
#: chart): probes on the named port `https` (containerPort), CPU and memory requests, no limit.
CHART_DEFAULTS: dict[str, Any] = {
    "containerPort": 10250,
    "livenessProbe": {
        "httpGet": {"path": "/livez", "port": "https", "scheme": "HTTPS"},
        "initialDelaySeconds": 0,
        "periodSeconds": 10,
        "failureThreshold": 3,
    },
    "readinessProbe": {
        "httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"},
        "initialDelaySeconds": 20,
        "periodSeconds": 10,
        "failureThreshold": 3,
    },
    "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
}


@declares("metrics-server")
def chart_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """What the metrics-server chart runs: one Deployment (the addon-resizer nanny stays off)."""
    values = release.values
    if given(values, "addonResizer", "enabled"):
        raise ValueError("the metrics-server declaration does not cover addonResizer.enabled")

    def value(key: str) -> Any:
        set_here = given(values, key)
        return CHART_DEFAULTS[key] if set_here is None else set_here

    container = ChartContainer(
        "metrics-server",
        resources=value("resources") or None,
        liveness_probe=value("livenessProbe") or None,
        readiness_probe=value("readinessProbe") or None,
        ports={"https": value("containerPort")},
    )
    return [ChartWorkload("Deployment", fullname(release, "metrics-server"), [container])]


@dataclass(frozen=True)
class MetricsServerArgs:
    #: Chart version, pinned (the chart's appVersion pins the image).
    chart_version: str
    namespace: str = "kube-system"
    replicas: int = 1
    #: Skip kubelet certificate verification. Only for clusters whose kubelets serve self-signed
    #: certificates (kind, k3d, minikube); never on EKS or kops.
    kubelet_insecure_tls: bool = False

    def values(self) -> dict[str, Any]:
        """Chart values; every path exists in the chart's values.yaml (tests check it)."""
        values: dict[str, Any] = {
            "replicas": self.replicas,
            "containerPort": SECURE_PORT,
            "args": ["--kubelet-insecure-tls"] if self.kubelet_insecure_tls else [],
        }
        if self.replicas > 1:
            values["podDisruptionBudget"] = {"enabled": True, "minAvailable": 1}
        return values


class MetricsServer(pulumi.ComponentResource):
    """Installs the metrics-server Helm chart so HorizontalPodAutoscalers get CPU and memory usage."""

    chart: k8s.helm.v4.Chart
    namespace: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: MetricsServerArgs,
        provider: k8s.Provider,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        if args.replicas < 1:
            raise ValueError(f"MetricsServerArgs.replicas must be at least 1, got {args.replicas}")
        if not args.chart_version:
            raise ValueError("MetricsServerArgs.chart_version must pin a chart version")
        super().__init__("scaleplane:platform:MetricsServer", name, None, opts)
        # helm.v4.Chart: the chart has no hooks, and its rendered objects stay visible to the
        # policy pack (a helm.v3.Release would hide them inside the release).
        self.chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            chart="metrics-server",
            version=args.chart_version,
            namespace=args.namespace,
            repository_opts={"repo": CHART_REPOSITORY},
            values=args.values(),
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        # Only the API server (the aggregated metrics.k8s.io API) calls metrics-server, from
        # outside the pod network; its own scraping of kubelets is egress, left open. The
        # namespace (kube-system by default) is the cluster's: no default-deny is put on it.
        allow_ingress(
            f"{name}-ingress",
            args.namespace,
            policy_name="metrics-server-from-api-server",
            pods=POD_SELECTOR,
            sources=[API_SERVER],
            ports=[SECURE_PORT],
            parent=self,
            provider=provider,
        )
        self.namespace = pulumi.Output.from_input(args.namespace)
        self.register_outputs({"namespace": self.namespace})
