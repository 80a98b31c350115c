"""Traefik: the Ingress controller in front of the Linkerd dashboard (recipe 5).

Why Traefik and not the playbook's ingress-nginx: ingress-nginx is retired upstream (best-effort
maintenance ended March 2026). Traefik is maintained, reads standard Ingress objects (and their
TLS Secrets), redirects HTTP to HTTPS per entry point, and does basic auth (htpasswd/bcrypt
users in a Secret) with its Middleware CRD, which is what the dashboard needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.balancer import Balancer, Port
from components.chart_workloads import (
    ChartContainer,
    ChartRelease,
    ChartWorkload,
    declares,
    fullname,
    given,
    http_probe,
)
from components.kube import child_opts, namespace

CHART_REPOSITORY = "https://traefik.github.io/charts"
INGRESS_CLASS = "traefik"
#: The chart labels pods app.kubernetes.io/instance=<release>-<namespace> unless overridden;
#: a fixed value gives the balancer's Service a selector known before anything is rendered.
INSTANCE_LABEL = "traefik"
SELECTOR = {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": INSTANCE_LABEL}
#: The chart's `web` entry point listens on 8000 inside the pod, `websecure` on 8443.
WEB_CONTAINER_PORT = 8000
WEB_PORT = 80
WEBSECURE_CONTAINER_PORT = 8443
WEBSECURE_PORT = 443
WEBSECURE_ENTRY_POINT = "websecure"
SERVICE_NAME = "traefik"
#: The chart's probe timings and health port (values.yaml readinessProbe, livenessProbe and
#: ports.traefik.port; tests compare them with the pinned chart).
CHART_PROBE_DEFAULTS: dict[str, dict[str, int]] = {
    "readinessProbe": {
        "failureThreshold": 1,
        "initialDelaySeconds": 2,
        "periodSeconds": 10,
        "successThreshold": 1,
        "timeoutSeconds": 2,
    },
    "livenessProbe": {
        "failureThreshold": 3,
        "initialDelaySeconds": 2,
        "periodSeconds": 10,
        "successThreshold": 1,
        "timeoutSeconds": 2,
    },
}
CHART_HEALTH_PORT = 8080


@declares("traefik")
def chart_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """What the traefik chart runs (templates/_podtemplate.tpl): one Deployment, its one container
    named after the release, probed on the health port's /ping (a meshed namespace's proxy is
    added at admission, not by the chart)."""
    values = release.values
    for key in ("initContainers", "additionalContainers"):
        if given(values, "deployment", key):
            raise ValueError(f"the traefik declaration does not cover deployment.{key}")
    if (given(values, "deployment", "kind") or "Deployment") != "Deployment":
        raise ValueError("the traefik declaration covers deployment.kind: Deployment only")
    port = (
        given(values, "deployment", "healthchecksPort")
        or given(values, "ports", "traefik", "port")
        or CHART_HEALTH_PORT
    )
    scheme = given(values, "deployment", "healthchecksScheme") or "HTTP"

    def probe(key: str, path_key: str) -> dict[str, Any]:
        timing = {**CHART_PROBE_DEFAULTS[key], **(given(values, key) or {})}
        return http_probe(given(values, "deployment", path_key) or "/ping", port, scheme, **timing)

    name = fullname(release, "traefik")
    container = ChartContainer(
        name,
        resources=given(values, "resources") or None,
        liveness_probe=probe("livenessProbe", "livenessPath"),
        readiness_probe=probe("readinessProbe", "readinessPath"),
        startup_probe=given(values, "startupProbe") or None,
    )
    return [ChartWorkload("Deployment", name, [container])]


@dataclass(frozen=True)
class TraefikArgs:
    #: traefik chart version (41.3.0 is the pinned reference).
    chart_version: str = "41.3.0"
    namespace: str = "traefik"
    replicas: int = 1
    #: The mesh's namespace metadata (Linkerd: injection and its default inbound policy).
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    namespace_annotations: Mapping[str, str] = field(default_factory=dict)
    #: Traefik's pods are created after these (the mesh's proxy injector), so they start meshed.
    depends_on: Sequence[pulumi.Resource] = ()


class Traefik(pulumi.ComponentResource):
    """The traefik chart with an IngressClass `traefik`, exposed on 443 (and 80) by the stack's balancer.

    Only HTTPS leaves the cluster: the `web` entry point (port 80) permanently redirects every
    request to `websecure` (443), where each Ingress's TLS Secret is served. `url` is the
    balancer's address (https://host:443) and `host` the address alone. Middlewares must depend
    on `ready` (the chart installs their CRD).
    """

    url: pulumi.Output[Optional[str]]
    host: pulumi.Output[Optional[str]]
    ready: list[pulumi.Resource]
    namespace: k8s.core.v1.Namespace
    ingress_class: str = INGRESS_CLASS

    def __init__(
        self,
        name: str,
        args: TraefikArgs,
        provider: pulumi.ProviderResource,
        balancer: Balancer,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        if not 1 <= args.replicas <= 10:
            raise ValueError(f"TraefikArgs.replicas must be within 1..10, not {args.replicas}")
        super().__init__("scaleplane:ingress:Traefik", name, None, opts)
        ns = namespace(
            f"{name}-namespace",
            args.namespace,
            self,
            provider,
            # The chart runs Traefik as uid 65532 with every capability dropped, a read-only root
            # and seccomp RuntimeDefault, on unprivileged ports (and a meshed proxy likewise).
            pod_security="restricted",
            labels=args.namespace_labels,
            annotations=args.namespace_annotations,
        )

        # helm.v4.Chart, not v3.Release: the chart ships its CRDs (Middleware, IngressRoute, ...)
        # in `crds/`, which Helm installs once and then never upgrades or deletes. Rendered by
        # Pulumi, each CRD is a Pulumi resource: upgraded with the chart, removed by destroy, and
        # created before the objects that need it. The render is deterministic (no generated
        # certificates), and the Deployment is visible to the policy pack (probes, CPU requests).
        self.chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            name="traefik",
            chart="traefik",
            version=args.chart_version,
            repository_opts={"repo": CHART_REPOSITORY},
            namespace=ns.metadata["name"],
            values=self.chart_values(args),
            opts=child_opts(self, provider, depends_on=[ns, *args.depends_on]),
        )
        exposed = balancer.expose(
            SERVICE_NAME,
            namespace=ns.metadata["name"],
            selector=SELECTOR,
            port=WEBSECURE_PORT,
            target_port=WEBSECURE_CONTAINER_PORT,
            scheme="https",
            port_name=WEBSECURE_ENTRY_POINT,
            extra_ports=[Port("web", WEB_PORT, WEB_CONTAINER_PORT)],
            labels=SELECTOR,
            resource_name=f"{name}-service",
            parent=self,
            provider=provider,
            depends_on=[self.chart],
        )
        self.namespace = ns
        self.service = exposed.service
        self.url = exposed.url
        self.host = exposed.host
        self.ready = [self.chart]
        self.register_outputs({"url": self.url, "host": self.host})

    @staticmethod
    def chart_values(args: TraefikArgs) -> dict[str, Any]:
        return {
            "deployment": {"replicas": args.replicas},
            "instanceLabelOverride": INSTANCE_LABEL,
            # The chart's own Service is off: the Balancer makes the LoadBalancer Service, and
            # Ingress status is copied from it.
            "service": {"enabled": False},
            "providers": {
                "kubernetesIngress": {
                    "publishedService": {"enabled": True, "pathOverride": f"{args.namespace}/{SERVICE_NAME}"},
                },
            },
            # Only Ingresses that ask for Traefik: another controller may be the cluster default.
            "ingressClass": {"enabled": True, "isDefaultClass": False, "name": INGRESS_CLASS},
            # Plain HTTP only answers with a permanent redirect to HTTPS.
            "ports": {
                "web": {
                    "http": {
                        "redirections": {
                            "entryPoint": {"to": WEBSECURE_ENTRY_POINT, "scheme": "https", "permanent": True}
                        }
                    }
                }
            },
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        }
