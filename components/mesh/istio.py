"""Istio: the service mesh and its ingress gateway, from the istio-release Helm charts (recipe 4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.balancer import Balancer, Port
from components.chart_workloads import ChartContainer, ChartRelease, ChartWorkload, declares, given, http_probe
from components.kube import MANAGED_BY, PodSecurityLevel, child_opts, namespace
from components.mesh.certificates import self_signed_tls_secret
from components.mesh.flows import Flow
from components.network import API_SERVER, Peer, ProxyTraffic, allow_ingress, deny_ingress
from components.webhook import AdmissionProbe, WebhookReady, WebhookReadyArgs
from components.webhook import injection_probe as sidecar_injection_probe

CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
#: Where the published charts' images live (the chart sources point at a testing registry).
IMAGE_HUB = "docker.io/istio"
#: Every Istio CRD, as the base chart of the same release ships them.
CRDS_URL = "https://raw.githubusercontent.com/istio/istio/{version}/manifests/charts/base/files/crd-all.gen.yaml"
#: The gateway's name: its pods are labelled `istio: <name without "istio-">`, which is what
#: Gateway resources select on (`istio: ingressgateway`).
GATEWAY_NAME = "istio-ingressgateway"
GATEWAY_SELECTOR = {"app": GATEWAY_NAME, "istio": "ingressgateway"}
#: The gateway's service account (the chart names it after the release): its mTLS principal.
GATEWAY_SERVICE_ACCOUNT = GATEWAY_NAME
HTTP_PORT = 80
HTTPS_PORT = 443
#: A sidecar's HBONE tunnel port (inbound mTLS tunnel).
SIDECAR_TUNNEL_PORT = 15008
#: Where the gateway listens for HTTPS the NLB has already decrypted (certificateArn): a port
#: of its own, so port 80 can redirect every request to HTTPS without looping.
TLS_TERMINATED_PORT = 8443
#: The kubernetes.io/tls Secret the gateway serves HTTPS with when the program generates it.
GENERATED_CREDENTIAL = "istio-ingressgateway-tls"
#: istiod's pods, and the ports others open to them: 15012 (xDS and certificates over TLS, for
#: every proxy in the cluster) and 15017 (the injection and validation webhooks, for the API
#: server; its Service's 443 targets it). 15010 (plaintext xDS) and 15014 (metrics) stay closed:
#: no proxy here uses plaintext xDS and nothing scrapes istiod.
ISTIOD_SELECTOR = {"app": "istiod"}
XDS_TLS_PORT = 15012
WEBHOOK_PORT = 15017
#: The gateway's health port (the NLB's target health checks).
GATEWAY_STATUS_PORT = 15021
ACM_CERT_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert"
ACM_PORTS_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-ssl-ports"

#: Sidecar injection is switched on per namespace by this LABEL (Linkerd uses an annotation).
#: With the Istio CNI plugin the injected pods need no NET_ADMIN init container: the proxy and
#: its istio-validation init container run as UID 1337 with every capability dropped, so the
#: mesh asks no Pod Security level of the namespace (its owner picks one; restricted fits).
INJECTION_LABELS = {"istio-injection": "enabled"}
SECCOMP_DEFAULT = {"type": "RuntimeDefault"}
#: Resources of the pods the charts run (requests for the scheduler and the HPA; memory capped).
ISTIOD_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}
PROXY_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}
GATEWAY_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1024Mi"}}
CNI_RESOURCES = {"requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {"memory": "256Mi"}}


@dataclass(frozen=True)
class GatewayTls:
    """Where the gateway's HTTPS certificate comes from; see settings.traffic.GatewayTlsSettings.

    `certificate_arn`: the AWS NLB terminates TLS with this ACM certificate. `credential_name`:
    the gateway terminates TLS with this kubernetes.io/tls Secret of the gateway namespace. Neither:
    the program generates a self-signed certificate into a Secret of that namespace.
    """

    certificate_arn: Optional[str] = None
    credential_name: Optional[str] = None
    #: Validity of a generated certificate; renewed on the `up` within the last 30 days.
    validity_hours: int = 8_760


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
    gateway_tls: GatewayTls = GatewayTls()
    #: The Istio CNI node agent's own namespace (the only privileged one).
    cni_namespace: str = "istio-cni"
    #: A production stack warns when its gateway serves a self-signed certificate.
    production: bool = False
    #: Identity trust domain (the mesh's default).
    trust_domain: str = "cluster.local"


class IstioMesh(pulumi.ComponentResource):
    """Istio base (CRDs and validation), istiod (control plane), the CNI node agent, then the gateway.

    Zero trust by default: mutual TLS is STRICT mesh-wide (a PeerAuthentication in the root
    namespace) and a root-namespace AuthorizationPolicy with no rules allows nothing, so a meshed
    workload accepts only what `authorize()` lets in. The Istio CNI plugin sets up each pod's
    traffic redirection, so injected pods carry no NET_ADMIN init container.

    The gateway's LoadBalancer Service is made by the stack's `Balancer` (so it carries the
    NLB/MetalLB settings like every other exposed Service) and `ingress_host` is its address. It
    serves HTTPS on 443 (TLS at the NLB with an ACM certificate, or at the gateway with a TLS
    Secret) and redirects port 80 there. Everything is a Pulumi resource, the CRDs included, so
    `pulumi destroy` uninstalls Istio completely. Application namespaces opt in to sidecars with
    `namespace_labels()`; `route_http()` publishes a Service through the gateway.
    """

    ingress_host: pulumi.Output[Optional[str]]
    ingress_http_port: pulumi.Output[int]
    ingress_https_port: pulumi.Output[int]
    #: Application pods must be created after these, or they start without a sidecar.
    ready: list[pulumi.Resource]
    #: The Pod Security level a meshed application namespace needs: with the CNI plugin, the
    #: injected istio-validation and istio-proxy containers meet restricted (see INJECTION_LABELS).
    app_pod_security: PodSecurityLevel = "restricted"

    def __init__(
        self,
        name: str,
        args: IstioMeshArgs,
        provider: pulumi.ProviderResource,
        balancer: Balancer,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        self.validate(args, balancer)
        super().__init__("scaleplane:mesh:IstioMesh", name, None, opts)
        self._name = name
        self._provider = provider
        self._namespace = args.namespace
        self._args = args
        repository = {"repo": CHART_REPOSITORY}

        # istiod and the gateway run non-root with every capability dropped and seccomp
        # RuntimeDefault (the values below), the gateway binding low ports through the safe sysctl
        # net.ipv4.ip_unprivileged_port_start: restricted admits both. The CNI agent mounts the
        # node's CNI directories (hostPath) and adds NET_ADMIN, SYS_ADMIN, SYS_PTRACE to rewrite
        # pods' iptables: only privileged admits it, so it gets a namespace of its own.
        system_ns = namespace(f"{name}-namespace", args.namespace, self, provider, pod_security="restricted")
        gateway_ns = namespace(
            f"{name}-gateway-namespace", args.gateway_namespace, self, provider, pod_security="restricted"
        )
        cni_ns = namespace(f"{name}-cni-namespace", args.cni_namespace, self, provider, pod_security="privileged")

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
        # base and istiod stay helm.v3.Release: both ship webhook configurations that istiod
        # rewrites at runtime (it patches in its CA bundle, and flips the validating webhook's
        # failurePolicy from Ignore to Fail once it serves). As helm.v4.Chart children Pulumi
        # would own those fields and put the chart's values back on every update, switching
        # validation off and breaking injection until istiod patches them again. Istio also
        # documents Helm releases as its install and upgrade path (revision-based canaries,
        # `helm rollback` of the control plane). Their pods are checked by hand instead: istiod
        # requests CPU and memory (ISTIOD_RESOURCES) and has a readiness probe but no liveness
        # probe upstream (istiod's own choice: a stuck xDS server is restarted by its readiness
        # failing and the Deployment's rollout, not by a liveness kill).
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
        # The CNI node agent before istiod's injector: a pod injected for CNI (no istio-init)
        # that lands on a node without the plugin would start with no traffic redirection; its
        # istio-validation init container then fails it until the agent is there. helm.v4.Chart:
        # a DaemonSet, its RBAC and ConfigMap, rendered deterministically, so the policy pack
        # sees the DaemonSet (its install-cni container has a readiness probe and no liveness
        # probe upstream; the policy config exempts it by name).
        self.cni = k8s.helm.v4.Chart(
            f"{name}-cni",
            name="istio-cni",
            chart="cni",
            version=args.version,
            repository_opts=repository,
            namespace=cni_ns.metadata["name"],
            values=self.cni_values(args),
            opts=child_opts(self, provider, depends_on=[self.base]),
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
            opts=child_opts(self, provider, depends_on=[self.base, self.cni]),
        )
        # istiod's Release wait ends when its Deployment is ready, which says nothing about the
        # injection webhook: injected pods (the gateway's, the apps') wait until a dry-run pod
        # comes back injected.
        self.injector_ready = WebhookReady(
            f"{name}-injector-ready",
            WebhookReadyArgs(
                webhook="istiod's sidecar injector",
                namespace=args.namespace,
                job_name="istio-injector-ready",
                probes=[self.injection_probe(args)],
                revision=args.version,
            ),
            provider,
            after=[self.istiod, system_ns],
            opts=pulumi.ResourceOptions(parent=self),
        )

        # Mesh-wide zero trust, in the root namespace (istiod's): mTLS STRICT, and an ALLOW policy
        # with no rules, which allows nothing; authorize() opens each needed flow.
        mesh_wide = [self.crds, self.istiod, system_ns]
        self.peer_authentication = self._custom(
            f"{name}-mtls-strict",
            "PeerAuthentication",
            "default",
            args.namespace,
            {"mtls": {"mode": "STRICT"}},
            mesh_wide,
        )
        self.allow_nothing = self._custom(
            f"{name}-allow-nothing", "AuthorizationPolicy", "allow-nothing", args.namespace, {}, mesh_wide
        )

        # The gateway after istiod: its pods get their proxy image from istiod's injector ("auto").
        # helm.v4.Chart: Deployment, ServiceAccount, Role, HPA, PDB, all deterministic (the chart's
        # Service is off), so the policy pack checks them. Its container's probes and image come
        # from injection at admission (the policy config exempts it by name for that reason).
        self.gateway = k8s.helm.v4.Chart(
            f"{name}-gateway",
            name=GATEWAY_NAME,
            chart="gateway",
            version=args.version,
            repository_opts=repository,
            namespace=gateway_ns.metadata["name"],
            values=self.gateway_values(args),
            opts=child_opts(self, provider, depends_on=[self.istiod, *self.injector_ready.ready]),
        )
        tls_terminated_at_nlb = args.gateway_tls.certificate_arn is not None
        exposed = balancer.expose(
            GATEWAY_NAME,
            namespace=gateway_ns.metadata["name"],
            selector=GATEWAY_SELECTOR,
            port=HTTP_PORT,
            port_name="http2",
            extra_ports=[Port("https", HTTPS_PORT, TLS_TERMINATED_PORT if tls_terminated_at_nlb else HTTPS_PORT)],
            labels=GATEWAY_SELECTOR,
            annotations=self.gateway_service_annotations(args),
            resource_name=f"{name}-gateway-service",
            parent=self,
            provider=provider,
            depends_on=[self.gateway],
        )
        self.gateway_service = exposed.service
        self.ingress_host = exposed.host
        self._credential_name = self._gateway_credential(name, args, exposed.host, gateway_ns)
        # The gateway is the stack's entry point: any source may reach its listeners (the
        # balancer's source ranges and NetworkPolicy narrow who can).
        listener_ports = [HTTP_PORT, TLS_TERMINATED_PORT if tls_terminated_at_nlb else HTTPS_PORT]
        self._custom(
            f"{name}-gateway-allow",
            "AuthorizationPolicy",
            GATEWAY_NAME,
            args.gateway_namespace,
            {
                "selector": {"matchLabels": dict(GATEWAY_SELECTOR)},
                "action": "ALLOW",
                "rules": [{"to": [{"operation": {"ports": [str(port) for port in listener_ports]}}]}],
            },
            [*mesh_wide, gateway_ns],
        )
        self._network_policies(name, args, listener_ports, system_ns, gateway_ns, cni_ns)
        self.ingress_http_port = pulumi.Output.from_input(HTTP_PORT)
        self.ingress_https_port = pulumi.Output.from_input(HTTPS_PORT)
        self.ready = [self.istiod, self.cni, *self.injector_ready.ready]
        self.register_outputs(
            {
                "ingress_host": self.ingress_host,
                "ingress_http_port": self.ingress_http_port,
                "ingress_https_port": self.ingress_https_port,
            }
        )

    @staticmethod
    def validate(args: IstioMeshArgs, balancer: Optional[Balancer] = None) -> None:
        if not 1 <= args.pilot_replicas <= 10:
            raise ValueError(f"IstioMeshArgs.pilot_replicas must be within 1..10, not {args.pilot_replicas}")
        if not 1 <= args.gateway_min_replicas <= args.gateway_max_replicas:
            raise ValueError(
                "IstioMeshArgs.gateway_min_replicas must be at least 1 and at most gateway_max_replicas "
                f"({args.gateway_min_replicas} > {args.gateway_max_replicas})"
            )
        if args.namespace == args.gateway_namespace:
            raise ValueError("IstioMeshArgs.gateway_namespace must differ from namespace (the gateway runs apart)")
        if args.cni_namespace in (args.namespace, args.gateway_namespace):
            raise ValueError("IstioMeshArgs.cni_namespace must be a namespace of its own (it is privileged)")
        tls_args = args.gateway_tls
        if tls_args.certificate_arn is not None and tls_args.credential_name is not None:
            raise ValueError("IstioMeshArgs.gateway_tls: set certificate_arn or credential_name, not both")
        if tls_args.certificate_arn is not None and balancer is not None and balancer.kind != "aws-nlb":
            raise ValueError(
                f"IstioMeshArgs.gateway_tls.certificate_arn needs the aws-nlb balancer (this one is {balancer.kind})"
            )

    def _network_policies(
        self,
        name: str,
        args: IstioMeshArgs,
        listener_ports: Sequence[int],
        system_ns: k8s.core.v1.Namespace,
        gateway_ns: k8s.core.v1.Namespace,
        cni_ns: k8s.core.v1.Namespace,
    ) -> None:
        """Default-deny ingress in Istio's namespaces, then exactly the control plane's flows.

        The proxies calling istiod sit in every meshed namespace and the API server calling its
        webhook is outside the pod network, so those ports are open to any source (istiod
        authenticates both). The gateway is the stack's entry point. The CNI agent serves nothing.
        """
        provider = self._provider
        for role, ns in (("system", system_ns), ("gateway", gateway_ns), ("cni", cni_ns)):
            deny_ingress(f"{name}-{role}-deny-ingress", ns.metadata["name"], self, provider, depends_on=[ns])
        allow_ingress(
            f"{name}-istiod-ingress",
            system_ns.metadata["name"],
            policy_name="istiod",
            pods=ISTIOD_SELECTOR,
            sources=[Peer.anywhere(), API_SERVER],
            ports=[XDS_TLS_PORT, WEBHOOK_PORT],
            parent=self,
            provider=provider,
            depends_on=[system_ns],
        )
        allow_ingress(
            f"{name}-gateway-ingress",
            gateway_ns.metadata["name"],
            policy_name=GATEWAY_NAME,
            pods=GATEWAY_SELECTOR,
            sources=[Peer.anywhere()],
            ports=[*listener_ports, GATEWAY_STATUS_PORT],
            parent=self,
            provider=provider,
            depends_on=[gateway_ns],
        )

    def _custom(
        self,
        resource_name: str,
        kind: str,
        name: str,
        namespace_name: str,
        spec: dict[str, Any],
        depends_on: Sequence[pulumi.Resource],
    ) -> k8s.apiextensions.CustomResource:
        """A security.istio.io/v1 object (PeerAuthentication or AuthorizationPolicy).

        After the CRDs and istiod: its validating webhook checks these objects, and istiod
        starts it fail-open (Ignore), switching it to Fail once it answers.
        """
        return k8s.apiextensions.CustomResource(
            resource_name,
            api_version="security.istio.io/v1",
            kind=kind,
            metadata={"name": name, "namespace": namespace_name, "labels": dict(MANAGED_BY)},
            spec=spec,
            opts=child_opts(self, self._provider, depends_on=list(depends_on)),
        )

    def _gateway_credential(
        self,
        name: str,
        args: IstioMeshArgs,
        host: pulumi.Output[Optional[str]],
        gateway_ns: k8s.core.v1.Namespace,
    ) -> Optional[str]:
        """The TLS Secret the gateway serves HTTPS with (None when the NLB terminates TLS).

        Neither an ACM certificate nor a Secret of the user's: generate a self-signed one for the
        balancer's address, so HTTPS works from the first `up` (clients must accept the
        certificate); a production stack warns, as browsers will not trust it.
        """
        tls_args = args.gateway_tls
        if tls_args.certificate_arn is not None:
            return None
        if tls_args.credential_name is not None:
            return tls_args.credential_name
        if args.production:
            pulumi.log.warn(
                "the Istio ingress gateway serves a self-signed certificate: set scaleplane:istio.gateway.tls."
                "certificateArn (ACM, TLS at the NLB) or credentialName (your TLS Secret in "
                f"{args.gateway_namespace}) for one clients trust",
                resource=self,
            )
        self_signed_tls_secret(
            f"{name}-gateway-tls",
            secret_name=GENERATED_CREDENTIAL,
            namespace=args.gateway_namespace,
            common_name=GATEWAY_NAME,
            host=host,
            validity_hours=tls_args.validity_hours,
            early_renewal_hours=720,
            parent=self,
            provider=self._provider,
            depends_on=[gateway_ns],
        )
        return GENERATED_CREDENTIAL

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
                # The injected istio-proxy and istio-validation containers: seccomp RuntimeDefault
                # (with CNI they already run as 1337 with every capability dropped), which makes
                # injected pods meet the restricted Pod Security level; and requests for each.
                "proxy": {"seccompProfile": dict(SECCOMP_DEFAULT), "resources": PROXY_RESOURCES},
            },
            # istiod's own settings are top-level keys of this chart (no `pilot.` prefix).
            "autoscaleEnabled": False,
            "replicaCount": args.pilot_replicas,
            "resources": ISTIOD_RESOURCES,
            "seccompProfile": dict(SECCOMP_DEFAULT),
            # The CNI plugin redirects pod traffic: the injector adds istio-validation (no
            # privileges) instead of istio-init (NET_ADMIN, NET_RAW, root).
            "cni": {"enabled": True},
        }

    @staticmethod
    def injection_probe(args: IstioMeshArgs) -> AdmissionProbe:
        """A pod that asks for a sidecar by label (the injector's object-selector webhook, for
        namespaces without istio-injection) and must come back with init containers: injected, it has
        istio-validation (CNI) or the proxy as a native sidecar; untouched, none. Restricted, as
        istiod's namespace enforces."""
        return sidecar_injection_probe(args.namespace, labels={"sidecar.istio.io/inject": "true"})

    @staticmethod
    def cni_values(args: IstioMeshArgs) -> dict[str, Any]:
        return {
            "global": {"hub": IMAGE_HUB, "tag": args.version},
            "resources": CNI_RESOURCES,
            "seccompProfile": dict(SECCOMP_DEFAULT),
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
            "resources": GATEWAY_RESOURCES,
            # The chart's default pod securityContext (the unprivileged-port sysctl, so the proxy
            # binds 80 and 443 as UID 1337) plus seccomp RuntimeDefault: restricted.
            "securityContext": {
                "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
                "seccompProfile": dict(SECCOMP_DEFAULT),
            },
        }

    @staticmethod
    def gateway_service_annotations(args: IstioMeshArgs) -> dict[str, str]:
        """With an ACM certificate, the NLB terminates TLS on the `https` port (443) with it."""
        if args.gateway_tls.certificate_arn is None:
            return {}
        return {ACM_CERT_ANNOTATION: args.gateway_tls.certificate_arn, ACM_PORTS_ANNOTATION: "https"}

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
            egress=((Peer.namespace_of(self._namespace), (XDS_TLS_PORT,)),),
        )

    def principal(self, namespace_name: str, service_account: str) -> str:
        """The mTLS identity Istio gives a service account's pods (SPIFFE path form)."""
        return f"{self._args.trust_domain}/ns/{namespace_name}/sa/{service_account}"

    def authorize(self, flow: Flow, depends_on: Sequence[pulumi.Resource] = ()) -> list[pulumi.Resource]:
        """Let `flow`'s clients in (the root policy allows nothing else).

        An AuthorizationPolicy on the flow's pods and port: its client namespaces (mTLS
        identities), the ingress gateway's principal, and for clients outside the mesh any
        source; those arrive in plain text, so a PeerAuthentication relaxes mTLS to PERMISSIVE
        on that port of those pods only. `depends_on`: what creates the namespace.
        """
        ports = [str(flow.port)]
        rules: list[dict[str, Any]] = []
        if flow.clients:
            rules.append(
                {"from": [{"source": {"namespaces": list(flow.clients)}}], "to": [{"operation": {"ports": ports}}]}
            )
        if flow.from_ingress:
            gateway = self.principal(self._args.gateway_namespace, GATEWAY_SERVICE_ACCOUNT)
            rules.append({"from": [{"source": {"principals": [gateway]}}], "to": [{"operation": {"ports": ports}}]})
        if flow.from_outside:
            rules.append({"to": [{"operation": {"ports": ports}}]})
        after = [self.crds, self.istiod, *depends_on]
        selector = {"matchLabels": dict(flow.selector)}
        created: list[pulumi.Resource] = [
            self._custom(
                f"{self._name}-{flow.namespace}-{flow.name}-allow",
                "AuthorizationPolicy",
                flow.name,
                flow.namespace,
                {"selector": selector, "action": "ALLOW", "rules": rules},
                after,
            )
        ]
        if flow.from_outside:
            created.append(
                self._custom(
                    f"{self._name}-{flow.namespace}-{flow.name}-plaintext",
                    "PeerAuthentication",
                    flow.name,
                    flow.namespace,
                    {
                        "selector": selector,
                        "mtls": {"mode": "STRICT"},
                        "portLevelMtls": {str(flow.port): {"mode": "PERMISSIVE"}},
                    },
                    after,
                )
            )
        return created

    def route_http(
        self,
        service: str,
        *,
        namespace: str,
        port: int,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> tuple[k8s.apiextensions.CustomResource, k8s.apiextensions.CustomResource]:
        """Publish `service:port` on the ingress gateway for every host, path prefix "/", over HTTPS.

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
            spec=self.gateway_spec(self._args, self._credential_name),
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
    def gateway_spec(args: IstioMeshArgs, credential_name: Optional[str]) -> dict[str, Any]:
        """Port 80 redirects to HTTPS; HTTPS ends at the gateway (credential) or at the NLB (8443)."""
        redirect = {
            "port": {"number": HTTP_PORT, "name": "http", "protocol": "HTTP"},
            "hosts": ["*"],
            "tls": {"httpsRedirect": True},
        }
        if credential_name is None:
            # The NLB decrypts 443 and forwards plain HTTP here (never redirected: no loop).
            https = {"port": {"number": TLS_TERMINATED_PORT, "name": "http-tls-terminated", "protocol": "HTTP"}}
        else:
            https = {
                "port": {"number": HTTPS_PORT, "name": "https", "protocol": "HTTPS"},
                "tls": {"mode": "SIMPLE", "credentialName": credential_name},
            }
        return {"selector": {"istio": "ingressgateway"}, "servers": [redirect, {**https, "hosts": ["*"]}]}

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


# --- what the charts run (for the offline plan's policy run; istio/istio at 1.30.3) -----------


@declares("base")
def base_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """base renders CRDs, a ServiceAccount and the default validating webhook: no workload."""
    return []


@declares("istiod")
def istiod_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """istiod's Deployment: `discovery`, with the readiness probe of templates/deployment.yaml and no
    liveness probe (upstream's choice; the policy config exempts istiod by name)."""
    revision = given(release.values, "revision") or ""
    name = f"istiod-{revision}" if revision else "istiod"
    discovery = ChartContainer(
        "discovery",
        resources=given(release.values, "resources"),
        readiness_probe=http_probe("/ready", 8080, initialDelaySeconds=1, periodSeconds=3, timeoutSeconds=5),
    )
    return [ChartWorkload("Deployment", name, [discovery])]


@declares("cni")
def cni_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """istio-cni's node agent (templates/daemonset.yaml): install-cni, readiness on /readyz, no liveness
    probe upstream (the policy config exempts it by name)."""
    install = ChartContainer(
        "install-cni", resources=given(release.values, "resources"), readiness_probe=http_probe("/readyz", 8000)
    )
    return [ChartWorkload("DaemonSet", "istio-cni-node", [install])]


@declares("gateway")
def gateway_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """The gateway's Deployment: istio-proxy, its image and probes injected at admission (readinessProbe
    stays unset in the values), so the policy config exempts it by name."""
    name = given(release.values, "name") or release.name
    proxy = ChartContainer(
        "istio-proxy",
        resources=given(release.values, "resources"),
        readiness_probe=given(release.values, "readinessProbe") or None,
    )
    return [ChartWorkload("Deployment", name, [proxy])]
