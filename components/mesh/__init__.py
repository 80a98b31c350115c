"""The stack's service mesh, whichever the `mesh` setting names, and what application namespaces need from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import pulumi

from components import minio, todo
from components.balancer import Balancer
from components.ingress.traefik import TraefikArgs
from components.kube import PodSecurityLevel
from components.mesh.emojivoto import EmojivotoArgs
from components.mesh.flows import Flow
from components.mesh.istio import GatewayTls, IstioMesh, IstioMeshArgs
from components.mesh.linkerd import CertificateValidity, LinkerdMesh, LinkerdMeshArgs
from components.network import NO_PROXY, ProxyTraffic
from settings import Settings

__all__ = ["Flow", "IstioMesh", "LinkerdMesh", "Mesh", "NoMesh", "application_flows", "mesh_for"]


@dataclass(frozen=True)
class NoMesh:
    """No service mesh: application namespaces need no labels and nothing to wait for."""

    ready: list[pulumi.Resource] = field(default_factory=list)
    #: Application namespaces enforce restricted: nothing is injected into their pods.
    app_pod_security: PodSecurityLevel = "restricted"

    @staticmethod
    def namespace_labels() -> dict[str, str]:
        return {}

    @staticmethod
    def namespace_annotations() -> dict[str, str]:
        return {}

    @staticmethod
    def proxy_traffic() -> ProxyTraffic:
        return NO_PROXY

    @staticmethod
    def authorize(flow: Flow, depends_on: Sequence[pulumi.Resource] = ()) -> list[pulumi.Resource]:
        """Without a mesh there is nothing to authorize (NetworkPolicies still apply)."""
        return []


Mesh = Union[IstioMesh, LinkerdMesh, NoMesh]


def mesh_for(
    name: str,
    settings: Settings,
    provider: pulumi.ProviderResource,
    balancer: Balancer,
    opts: Optional[pulumi.ResourceOptions] = None,
) -> Mesh:
    """Install the mesh the stack's `mesh` setting names (or none)."""
    if settings.mesh == "istio":
        istio = settings.istio_settings
        return IstioMesh(
            name,
            IstioMeshArgs(
                version=istio.version,
                namespace=istio.namespace,
                pilot_replicas=istio.pilot_replicas,
                gateway_namespace=istio.gateway.namespace,
                gateway_min_replicas=istio.gateway.min_replicas,
                gateway_max_replicas=istio.gateway.max_replicas,
                gateway_tls=GatewayTls(
                    certificate_arn=istio.gateway.tls.certificate_arn,
                    credential_name=istio.gateway.tls.credential_name,
                ),
                cni_namespace=istio.cni_namespace,
                production=settings.production,
            ),
            provider,
            balancer.exposed_as(istio.gateway.exposure),
            opts,
        )
    if settings.mesh == "linkerd":
        linkerd = settings.linkerd_settings
        demo = linkerd.emojivoto
        return LinkerdMesh(
            name,
            LinkerdMeshArgs(
                chart_version=linkerd.chart_version,
                namespace=linkerd.namespace,
                viz_namespace=linkerd.viz_namespace,
                cni_namespace=linkerd.cni_namespace,
                install_gateway_api=linkerd.install_gateway_api,
                trust_anchor=CertificateValidity(
                    linkerd.trust_anchor.validity_hours, linkerd.trust_anchor.early_renewal_hours
                ),
                issuer=CertificateValidity(linkerd.issuer.validity_hours, linkerd.issuer.early_renewal_hours),
                dashboard_user=linkerd.dashboard_user,
                traefik=TraefikArgs(
                    chart_version=linkerd.traefik.chart_version,
                    namespace=linkerd.traefik.namespace,
                    replicas=linkerd.traefik.replicas,
                ),
                emojivoto=EmojivotoArgs(namespace=demo.namespace, version=demo.version) if demo.enabled else None,
            ),
            provider,
            balancer.exposed_as(linkerd.exposure),
            opts,
        )
    return NoMesh()


def application_flows(settings: Settings) -> list[Flow]:
    """Who may reach the stack's application ports; the mesh enforces exactly these.

    The to-do web from the mesh's ingress, from its own namespace (the load test) and from
    outside the mesh (its LoadBalancer Service); MongoDB from the to-do namespace (the web);
    MinIO's S3 API from its peers (distributed mode), the ingress (recipe 4's route) and outside
    the mesh (recipe 3's minio-service).
    """
    app = settings.todo
    flows = [
        Flow(
            "todo-web",
            app.namespace,
            {"app": app.name},
            app.port,
            clients=[app.namespace],
            from_ingress=True,
            from_outside=True,
        ),
        Flow("mongodb", app.namespace, {"app": todo.MONGODB_APP}, todo.MONGODB_PORT, clients=[app.namespace]),
    ]
    if settings.minio.enabled:
        space = settings.minio.namespace
        flows.append(
            Flow(
                "minio-api",
                space,
                {"app": minio.APP},
                minio.API_PORT,
                clients=[space],
                from_ingress=True,
                from_outside=True,
            )
        )
    return flows
