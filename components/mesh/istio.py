"""Istio: the service mesh and its ingress gateway, from the istio-release Helm charts (recipe 4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.balancer import Balancer, Port
from components.kube import MANAGED_BY, PodSecurityLevel, child_opts, namespace
from components.network import Peer, ProxyTraffic

CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
#: Where the published charts' images live (the chart sources point at a testing registry).
IMAGE_HUB = "docker.io/istio"
#: Every Istio CRD, as the base chart of the same release ships them.
CRDS_URL = "https://raw.githubusercontent.com/istio/istio/{version}/manifests/charts/base/files/crd-all.gen.yaml"
#: The gateway's name: its pods are labelled `istio: <name without "istio-">`, which is what
#: Gateway resources select on (`istio: ingressgateway`).
GATEWAY_NAME = "istio-ingressgateway"
GATEWAY_SELECTOR = {"app": GATEWAY_NAME, "istio": "ingressgateway"}
HTTP_PORT = 80
HTTPS_PORT = 443
#: A sidecar's HBONE tunnel port (inbound mTLS tunnel), and istiod's xDS/CA port it connects to.
SIDECAR_TUNNEL_PORT = 15008
ISTIOD_XDS_PORT = 15012

#: Sidecar injection is switched on per namespace by this LABEL (Linkerd uses an annotation).
INJECTION_LABELS = {"istio-injection": "enabled"}


@dataclass(frozen=True)
class IstioMeshArgs:
    #: One version for base, istiod and gateway (1.30.3 is the pinned reference).
    version: str = "1.30.3"
    namespace: str = "istio-system"
    #: istiod replicas; the chart's own HPA is off so this is the count.
    pilot_replicas: int = 1
    gateway_namespace: str = "istio-ingress"
    gateway_min_replicas: int = 1
    gateway_max_replicas: int = 5


class IstioMesh(pulumi.ComponentResource):
    """Istio base (CRDs and validation), istiod (control plane), then the ingress gateway.

    The gateway's LoadBalancer Service is made by the stack's `Balancer` (so it carries the
    NLB/MetalLB settings like every other exposed Service) and `ingress_host` is its address.
    Everything is a Pulumi resource, the CRDs included, so `pulumi destroy` uninstalls Istio
    completely. Application namespaces opt in to sidecars
    with `namespace_labels()`; `route_http()` publishes a Service through the gateway.
    """

    ingress_host: pulumi.Output[Optional[str]]
    ingress_http_port: pulumi.Output[int]
    ingress_https_port: pulumi.Output[int]
    #: Application pods must be created after these, or they start without a sidecar.
    ready: list[pulumi.Resource]
    #: The Pod Security level a meshed application namespace needs: istio-init adds iptables
    #: rules with NET_ADMIN/NET_RAW, which only `privileged` admits (without the Istio CNI plugin).
    app_pod_security: PodSecurityLevel = "privileged"

    def __init__(
        self,
        name: str,
        args: IstioMeshArgs,
        provider: pulumi.ProviderResource,
        balancer: Balancer,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        self.validate(args)
        super().__init__("scaleplane:mesh:IstioMesh", name, None, opts)
        self._name = name
        self._provider = provider
        self._namespace = args.namespace
        repository = {"repo": CHART_REPOSITORY}

        # istiod and the gateway run as non-root without added capabilities or host access (the
        # gateway binds low ports through the safe sysctl net.ipv4.ip_unprivileged_port_start):
        # baseline admits both; restricted would need the charts' seccompProfile values set.
        system_ns = namespace(f"{name}-namespace", args.namespace, self, provider, pod_security="baseline")
        gateway_ns = namespace(
            f"{name}-gateway-namespace", args.gateway_namespace, self, provider, pod_security="baseline"
        )

        # The CRDs as plain Pulumi resources from the release's own CRD file (the one the base
        # chart templates): the chart marks them helm.sh/resource-policy: keep, so `helm
        # uninstall` (Release) and Chart v4 (which maps keep to retainOnDelete) would both leave
        # them behind. Owned here, they are upgraded with `version` before the charts, and
        # `pulumi destroy` deletes them: the uninstall is clean.
        self.crds = k8s.yaml.v2.ConfigFile(
            f"{name}-crds",
            file=CRDS_URL.format(version=args.version),
            opts=child_opts(self, provider),
        )
        # Since Istio 1.24 the base chart renders the CRDs whatever enableCRDTemplates says
        # (false only drops the label rewrite), and Helm refuses to install over objects it does
        # not own. excludedCRDs is the chart's one switch that leaves a CRD out: list every CRD
        # the file above created, so the chart and this program never both claim one.
        crd_names = self.crds.resources.apply(resource_names)
        # All three charts as helm.v3.Release: Istio documents and supports Helm releases as its
        # install and upgrade path (revision-based canary upgrades, `helm rollback` of the control
        # plane), and istiod patches the caBundle of the webhooks the charts ship at runtime, which
        # inside a release is not drift for Pulumi to fight.
        self.base = k8s.helm.v3.Release(
            f"{name}-base",
            name="istio-base",
            chart="base",
            version=args.version,
            repository_opts=repository,
            namespace=system_ns.metadata["name"],
            values=self.base_values(args, crd_names),
            skip_crds=True,
            max_history=10,
            opts=child_opts(self, provider, depends_on=[self.crds]),
        )
        # istiod after base: its validating webhook and CRD watches need base's objects.
        self.istiod = k8s.helm.v3.Release(
            f"{name}-istiod",
            name="istiod",
            chart="istiod",
            version=args.version,
            repository_opts=repository,
            namespace=system_ns.metadata["name"],
            values=self.istiod_values(args),
            max_history=10,
            opts=child_opts(self, provider, depends_on=[self.base]),
        )
        # The gateway after istiod: its pods get their proxy image from istiod's injector ("auto").
        self.gateway = k8s.helm.v3.Release(
            f"{name}-gateway",
            name=GATEWAY_NAME,
            chart="gateway",
            version=args.version,
            repository_opts=repository,
            namespace=gateway_ns.metadata["name"],
            values=self.gateway_values(args),
            max_history=10,
            opts=child_opts(self, provider, depends_on=[self.istiod]),
        )
        exposed = balancer.expose(
            GATEWAY_NAME,
            namespace=gateway_ns.metadata["name"],
            selector=GATEWAY_SELECTOR,
            port=HTTP_PORT,
            port_name="http2",
            extra_ports=[Port("https", HTTPS_PORT, HTTPS_PORT)],
            labels=GATEWAY_SELECTOR,
            resource_name=f"{name}-gateway-service",
            parent=self,
            provider=provider,
            depends_on=[self.gateway],
        )
        self.gateway_service = exposed.service
        self.ingress_host = exposed.host
        self.ingress_http_port = pulumi.Output.from_input(HTTP_PORT)
        self.ingress_https_port = pulumi.Output.from_input(HTTPS_PORT)
        self.ready = [self.istiod]
        self.register_outputs(
            {
                "ingress_host": self.ingress_host,
                "ingress_http_port": self.ingress_http_port,
                "ingress_https_port": self.ingress_https_port,
            }
        )

    @staticmethod
    def validate(args: IstioMeshArgs) -> None:
        if not 1 <= args.pilot_replicas <= 10:
            raise ValueError(f"IstioMeshArgs.pilot_replicas must be within 1..10, not {args.pilot_replicas}")
        if not 1 <= args.gateway_min_replicas <= args.gateway_max_replicas:
            raise ValueError(
                "IstioMeshArgs.gateway_min_replicas must be at least 1 and at most gateway_max_replicas "
                f"({args.gateway_min_replicas} > {args.gateway_max_replicas})"
            )
        if args.namespace == args.gateway_namespace:
            raise ValueError("IstioMeshArgs.gateway_namespace must differ from namespace (the gateway runs apart)")

    # Values are set at the top level: the charts keep their defaults under
    # `_internal_defaults_do_not_set`, which users must never set themselves.
    @staticmethod
    def base_values(args: IstioMeshArgs, crd_names: pulumi.Input[Sequence[str]]) -> dict[str, Any]:
        # CRDs come from self.crds, not from the chart's templates (see __init__): the chart
        # skips every name in excludedCRDs, which only works with enableCRDTemplates left on.
        return {
            "global": {"istioNamespace": args.namespace},
            "base": {"enableCRDTemplates": True, "excludedCRDs": crd_names},
        }

    @staticmethod
    def istiod_values(args: IstioMeshArgs) -> dict[str, Any]:
        return {
            "global": {
                "istioNamespace": args.namespace,
                "hub": IMAGE_HUB,
                "tag": args.version,
                # The chart's PDB keeps one istiod available: with a single replica it allows no
                # eviction at all, and node drains (EKS node group upgrades) stall on it.
                "defaultPodDisruptionBudget": {"enabled": args.pilot_replicas > 1},
            },
            # istiod's own settings are top-level keys of this chart (no `pilot.` prefix).
            "autoscaleEnabled": False,
            "replicaCount": args.pilot_replicas,
        }

    @staticmethod
    def gateway_values(args: IstioMeshArgs) -> dict[str, Any]:
        return {
            "name": GATEWAY_NAME,
            # The chart's own Service is off ("None"): the Balancer makes the LoadBalancer one.
            "service": {"type": "None"},
            "autoscaling": {
                "enabled": True,
                "minReplicas": args.gateway_min_replicas,
                "maxReplicas": args.gateway_max_replicas,
            },
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1024Mi"}},
        }

    @staticmethod
    def namespace_labels() -> dict[str, str]:
        """Labels an application namespace carries to get Istio sidecars."""
        return dict(INJECTION_LABELS)

    @staticmethod
    def namespace_annotations() -> dict[str, str]:
        """Istio needs no namespace annotations (injection is a label)."""
        return {}

    def proxy_traffic(self) -> ProxyTraffic:
        """What a sidecar needs from NetworkPolicies: its tunnel port in, istiod out.

        Sidecar-to-sidecar mTLS arrives on the application's own port (the client dials the
        Service's target port), so those rules stay the application's. 15090 (Prometheus stats)
        has no scraper in this stack, and kubelet probes (rewritten to 15020/15021) are not
        subject to NetworkPolicy.
        """
        return ProxyTraffic(
            ingress=((Peer.anywhere(), (SIDECAR_TUNNEL_PORT,)),),
            egress=((Peer.namespace_of(self._namespace), (ISTIOD_XDS_PORT,)),),
        )

    def route_http(
        self,
        service: str,
        *,
        namespace: str,
        port: int,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> tuple[k8s.apiextensions.CustomResource, k8s.apiextensions.CustomResource]:
        """Publish `service:port` on the ingress gateway's port 80 for every host, path prefix "/".

        Creates the Gateway `<service>-gateway` and the VirtualService `<service>` in `namespace`
        (the playbook's minio-gateway and minio). `depends_on`: what creates the namespace.
        """
        gateway_name = f"{service}-gateway"
        after = [self.crds, self.istiod, *depends_on]  # CRDs and the validating webhook first
        gateway = k8s.apiextensions.CustomResource(
            f"{self._name}-{service}-gateway",
            api_version="networking.istio.io/v1",
            kind="Gateway",
            metadata={"name": gateway_name, "namespace": namespace, "labels": dict(MANAGED_BY)},
            spec=self.gateway_spec(),
            opts=child_opts(self, self._provider, depends_on=after),
        )
        virtual_service = k8s.apiextensions.CustomResource(
            f"{self._name}-{service}-virtual-service",
            api_version="networking.istio.io/v1",
            kind="VirtualService",
            metadata={"name": service, "namespace": namespace, "labels": dict(MANAGED_BY)},
            spec=self.virtual_service_spec(service, namespace, port),
            opts=child_opts(self, self._provider, depends_on=[*after, gateway]),
        )
        return gateway, virtual_service

    @staticmethod
    def gateway_spec() -> dict[str, Any]:
        return {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": HTTP_PORT, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        }

    @staticmethod
    def virtual_service_spec(service: str, namespace: str, port: int) -> dict[str, Any]:
        return {
            "hosts": ["*"],
            # The playbook's "<gateway>.<namespace>" form; Istio resolves it as <namespace>/<gateway>.
            "gateways": [f"{service}-gateway.{namespace}"],
            "http": [
                {
                    "match": [{"uri": {"prefix": "/"}}],
                    "route": [{"destination": {"host": service, "port": {"number": port}}}],
                }
            ],
        }


def resource_names(resources: Optional[Sequence[Any]]) -> pulumi.Output[list[str]]:
    """metadata.name of each Kubernetes resource a ConfigFile created (none while there are none).

    The SDK hands back each resource reference as the resource itself, or as its ID when the
    resource's module is not registered; a cluster-scoped object's ID is its name.
    """

    def name(resource: Any) -> pulumi.Output[str]:
        if isinstance(resource, str):
            return pulumi.Output.from_input(resource.rpartition("/")[2])
        return resource.metadata.apply(lambda meta: meta.name)

    return pulumi.Output.all(*[name(resource) for resource in resources or []])
