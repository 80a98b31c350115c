"""Linkerd: the service mesh, its viz dashboard behind basic auth, and the emojivoto demo (recipe 5)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components.balancer import Balancer
from components.chart_workloads import ChartContainer, ChartRelease, ChartWorkload, declares, given, http_probe
from components.ingress.traefik import SELECTOR as TRAEFIK_SELECTOR
from components.ingress.traefik import WEB_CONTAINER_PORT, WEBSECURE_CONTAINER_PORT, Traefik, TraefikArgs
from components.kube import MANAGED_BY, PodSecurityLevel, child_opts, namespace
from components.mesh.certificates import self_signed_tls_secret
from components.mesh.emojivoto import Emojivoto, EmojivotoArgs
from components.mesh.flows import EVERY_NETWORK, Flow
from components.network import API_SERVER, Peer, ProxyTraffic, allow_ingress, deny_ingress
from components.webhook import AdmissionProbe, WebhookReady, WebhookReadyArgs
from components.webhook import injection_probe as sidecar_injection_probe

CHART_REPOSITORY = "https://helm.linkerd.io/edge"
POLICY_GROUP = "policy.linkerd.io"
#: Meshed namespaces: injection is switched on by an ANNOTATION (Istio uses a label), and a
#: proxy without a Server for a port accepts only mTLS-authenticated meshed clients (the default
#: "all-unauthenticated" would let any plaintext client in). Kubelet probes still pass: the
#: policy controller authorizes each pod's probe paths from `policyController.probeNetworks`
#: on default-policy ports, and on ports a Server selects while no HTTPRoute is attached to it
#: (policy-controller/k8s/index/src/inbound/index.rs at edge-26.8.3, default_inbound_http_routes).
INJECT_ANNOTATIONS = {
    "linkerd.io/inject": "enabled",
    "config.linkerd.io/default-inbound-policy": "all-authenticated",
}
#: The injected linkerd-proxy: the chart's own default context (non-root UID 2102, read-only,
#: seccomp RuntimeDefault, no privilege escalation) plus every capability dropped, which
#: `restricted` demands and the chart's default leaves out.
PROXY_UID = 2102
PROXY_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": PROXY_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    """The Linkerd charts' resources shape (cpu/memory with request/limit), no CPU limit."""
    return {"cpu": {"request": cpu}, "memory": {"request": memory, "limit": memory_limit}}


#: Requests of every container the Linkerd charts run (a control plane without CPU requests is
#: BestEffort and evicted first). The proxy's also apply to every injected proxy and to the
#: network-validator init container (both read proxy.resources).
CONTROLLER_RESOURCES = _resources("100m", "64Mi", "256Mi")
PROXY_RESOURCES = _resources("50m", "32Mi", "256Mi")
PROMETHEUS_RESOURCES = _resources("100m", "256Mi", "1Gi")
CNI_RESOURCES = _resources("50m", "32Mi", "128Mi")
#: Key usages of a CA that signs certificates (and revocation lists) and nothing else.
CA_USES = ["cert_signing", "crl_signing"]
DASHBOARD_SERVICE = "web"
#: The proxy's inbound port (meshed clients may dial it directly) and its admin port (metrics,
#: scraped by linkerd-viz's Prometheus); the control plane's identity, destination and policy ports.
PROXY_INBOUND_PORT = 4143
PROXY_ADMIN_PORT = 4191
CONTROL_PLANE_PORTS = (8080, 8086, 8090)
DASHBOARD_PORT = 8084
#: The viz web container listens where its Service points.
DASHBOARD_CONTAINER_PORT = 8084
DASHBOARD_TLS_SECRET = "dashboard-tls"
#: The proxy's admin port (metrics for viz's Prometheus).
PROXY_ADMIN_PORT = 4191
#: Linkerd's pods and the ports others open to them (templates at edge-26.8.3). Proxies across
#: the cluster call destination (8086), policy (8090) and identity (8080); the API server calls
#: the webhooks (proxy injector 8443, sp-validator 8443, policy validator 9443, tap-injector 8443)
#: and the tap APIService (8089); viz's Prometheus scrapes the admin ports.
CONTROL_PLANE_COMPONENT = "linkerd.io/control-plane-component"
CONTROL_PLANE_PORTS: dict[str, tuple[list[int], list[int], list[int]]] = {
    # component: (ports for proxies, ports for the API server, admin ports)
    "destination": ([8086, 8090], [8443, 9443], [9990, 9996, 9997]),
    "identity": ([8080], [], [9990]),
    "proxy-injector": ([], [8443], [9995]),
}
#: viz's pods: (component, ports for the API server, admin ports).
VIZ_PORTS: dict[str, tuple[list[int], list[int]]] = {
    "web": ([], [9994]),
    "metrics-api": ([], [9995]),
    "tap": ([8089], [9998]),
    "tap-injector": ([8443], [9995]),
    "prometheus": ([], [9090]),
}


@dataclass(frozen=True)
class CertificateValidity:
    #: Hours the certificate is valid for.
    validity_hours: int
    #: Within this many hours of expiry, the next `pulumi up` replaces it.
    early_renewal_hours: int


@dataclass(frozen=True)
class LinkerdMeshArgs:
    #: Edge chart version for linkerd-crds, linkerd-control-plane and linkerd-viz.
    chart_version: str = "2026.8.3"
    namespace: str = "linkerd"
    viz_namespace: str = "linkerd-viz"
    #: The linkerd2-cni node agent's own namespace (the only privileged one).
    cni_namespace: str = "linkerd-cni"
    #: Let linkerd-crds install the Gateway API CRDs the policy controller needs.
    install_gateway_api: bool = True
    trust_anchor: CertificateValidity = CertificateValidity(validity_hours=87_600, early_renewal_hours=2_160)
    issuer: CertificateValidity = CertificateValidity(validity_hours=8_760, early_renewal_hours=720)
    dashboard_user: str = "admin"
    traefik: TraefikArgs = TraefikArgs()
    #: None: no demo application.
    emojivoto: Optional[EmojivotoArgs] = None
    #: Identity trust domain (the cluster domain).
    trust_domain: str = "cluster.local"


class LinkerdMesh(pulumi.ComponentResource):
    """linkerd-crds, then linkerd-control-plane with a generated identity PKI, then linkerd-viz.

    The PKI is two certificates made by pulumi-tls, both ECDSA P-256 as Linkerd requires: a
    self-signed trust anchor (root CA) and the identity issuer (an intermediate CA it signs).
    A certificate inside its early-renewal window is replaced on the next `pulumi up`; a new
    trust anchor also re-issues the issuer, and meshed workloads must then be restarted to pick
    up the new root (see Linkerd's "rotating the trust anchor").

    Zero trust: the linkerd2-cni plugin redirects meshed pods' traffic (no NET_ADMIN init
    container), meshed namespaces accept only mTLS-authenticated clients by default
    (`namespace_annotations()`), and `authorize()` declares who may reach each app port
    (Server, AuthorizationPolicy, MeshTLSAuthentication / NetworkAuthentication).

    The viz dashboard is published by Traefik on the stack's balancer over HTTPS only (HTTP
    redirects), behind basic auth with a generated password (stored as a bcrypt htpasswd line;
    exported only as a secret), and keeps its own Host and websocket Origin checks: its
    enforced host is the balancer's address.
    """

    dashboard_url: pulumi.Output[Optional[str]]
    dashboard_user: pulumi.Output[str]
    dashboard_password: pulumi.Output[str]
    trust_anchor_pem: pulumi.Output[str]
    #: The Pod Security level a meshed application namespace needs: with linkerd-cni, restricted.
    app_pod_security: PodSecurityLevel = "restricted"
    emojivoto_url: Optional[pulumi.Output[Optional[str]]]
    #: Application pods must be created after these, or they start without a proxy.
    ready: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        args: LinkerdMeshArgs,
        provider: pulumi.ProviderResource,
        balancer: Balancer,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        self.validate(args)
        super().__init__("scaleplane:mesh:LinkerdMesh", name, None, opts)
        self._namespace = args.namespace
        self._viz_namespace = args.viz_namespace
        self._name = name
        self._provider = provider
        #: Traefik's namespace: the identity `from_ingress` flows admit.
        self._ingress_namespace = args.traefik.namespace
        repository = {"repo": CHART_REPOSITORY}

        control_ns = namespace(
            f"{name}-namespace",
            args.namespace,
            self,
            provider,
            pod_security="restricted",
            # What `linkerd install` puts on its namespace: the injector skips it, and the
            # extensions find the control plane by these labels.
            labels={
                "linkerd.io/is-control-plane": "true",
                "config.linkerd.io/admission-webhooks": "disabled",
                "linkerd.io/control-plane-ns": args.namespace,
            },
        )
        cni_ns = namespace(
            f"{name}-cni-namespace",
            args.cni_namespace,
            self,
            provider,
            # The node agent writes the host's CNI directories (hostPath volumes): only privileged
            # admits that, so it runs alone here. Every other Linkerd namespace is restricted: with
            # the plugin there is no proxy-init (NET_ADMIN, NET_RAW), the control plane and viz run
            # non-root with every capability dropped and seccomp RuntimeDefault, and the injected
            # proxy gets the same (PROXY_SECURITY_CONTEXT).
            pod_security="privileged",
            # What the chart's CLI install puts there: no injection, the CNI resource label.
            labels={
                "linkerd.io/cni-resource": "true",
                "config.linkerd.io/admission-webhooks": "disabled",
            },
        )

        # --- identity PKI ---------------------------------------------------------------------
        anchor_key = tls.PrivateKey(
            f"{name}-trust-anchor-key",
            algorithm="ECDSA",
            ecdsa_curve="P256",
            opts=pulumi.ResourceOptions(parent=self),
        )
        anchor = tls.SelfSignedCert(
            f"{name}-trust-anchor",
            private_key_pem=anchor_key.private_key_pem,
            is_ca_certificate=True,
            # Root -> issuer -> proxy certificates: one intermediate below the root.
            max_path_length=1,
            set_subject_key_id=True,
            subject={"common_name": f"root.linkerd.{args.trust_domain}"},
            allowed_uses=CA_USES,
            validity_period_hours=args.trust_anchor.validity_hours,
            early_renewal_hours=args.trust_anchor.early_renewal_hours,
            opts=pulumi.ResourceOptions(parent=self),
        )
        issuer_key = tls.PrivateKey(
            f"{name}-issuer-key",
            algorithm="ECDSA",
            ecdsa_curve="P256",
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Linkerd's identity service requires its issuer to be named identity.linkerd.<domain>,
        # and checks the name as a DNS SAN (Go's x509 verification ignores the common name): an
        # issuer without the SAN is refused at startup.
        issuer_name = f"identity.linkerd.{args.trust_domain}"
        issuer_request = tls.CertRequest(
            f"{name}-issuer-request",
            private_key_pem=issuer_key.private_key_pem,
            subject={"common_name": issuer_name},
            dns_names=[issuer_name],
            opts=pulumi.ResourceOptions(parent=self),
        )
        issuer = tls.LocallySignedCert(
            f"{name}-issuer",
            cert_request_pem=issuer_request.cert_request_pem,
            ca_private_key_pem=anchor_key.private_key_pem,
            ca_cert_pem=anchor.cert_pem,
            is_ca_certificate=True,
            max_path_length=0,
            set_subject_key_id=True,
            allowed_uses=CA_USES,
            validity_period_hours=args.issuer.validity_hours,
            early_renewal_hours=args.issuer.early_renewal_hours,
            opts=pulumi.ResourceOptions(parent=self),
        )

        # --- charts ---------------------------------------------------------------------------
        # linkerd-crds as helm.v4.Chart: CRDs only, rendered deterministically from templates, so
        # every CRD is a Pulumi resource (its diff visible in preview, removed by destroy) and
        # Pulumi waits for each to be established before the control plane that serves them.
        self.crds = k8s.helm.v4.Chart(
            f"{name}-crds",
            name="linkerd-crds",
            chart="linkerd-crds",
            version=args.chart_version,
            repository_opts=repository,
            namespace=control_ns.metadata["name"],
            values=self.crds_values(args),
            opts=child_opts(self, provider),
        )
        # linkerd2-cni before the control plane (cniEnabled below): every meshed pod, the control
        # plane's own included, needs the plugin on its node. helm.v4.Chart: a DaemonSet with its
        # RBAC and ConfigMap, rendered deterministically, so the policy pack sees the DaemonSet
        # (its install-cni container has no probes upstream: the policy config exempts it by name).
        self.cni = k8s.helm.v4.Chart(
            f"{name}-cni",
            name="linkerd2-cni",
            chart="linkerd2-cni",
            version=args.chart_version,
            repository_opts=repository,
            namespace=cni_ns.metadata["name"],
            values=self.cni_values(args),
            opts=child_opts(self, provider),
        )
        # linkerd-control-plane as helm.v3.Release: its templates generate the webhook serving
        # certificates (proxy injector, profile and policy validators) with Helm's genCA on every
        # render, so a Pulumi-side render would show new certificates on each preview; Helm keeps
        # them per release revision, and `helm history`/rollback cover control-plane upgrades.
        self.control_plane = k8s.helm.v3.Release(
            f"{name}-control-plane",
            name="linkerd-control-plane",
            chart="linkerd-control-plane",
            version=args.chart_version,
            repository_opts=repository,
            namespace=control_ns.metadata["name"],
            values=self.control_plane_values(args, anchor.cert_pem, issuer.cert_pem, issuer_key.private_key_pem),
            max_history=10,
            # The values hold the issuer key. A secret nested in a Release's values can come back
            # in plain text in the `values` output (pulumi/pulumi#9781): keep that output secret.
            opts=child_opts(self, provider, depends_on=[self.crds, self.cni], additional_secret_outputs=["values"]),
        )

        viz_ns = namespace(
            f"{name}-viz-namespace",
            args.viz_namespace,
            self,
            provider,
            pod_security="restricted",
            # The metadata the chart's post-install Job would patch in, owned here instead, so the
            # namespace is a plain Pulumi resource and no hook Job runs.
            labels={"linkerd.io/extension": "viz"},
            annotations={**INJECT_ANNOTATIONS, "config.linkerd.io/proxy-await": "enabled"},
        )
        # The proxy injector fails open (webhookFailurePolicy Ignore): a pod created before it
        # answers starts without a proxy, and the authenticated default policy then refuses it.
        # The Release's wait ends when the injector's Deployment is ready, which says nothing
        # about the webhook: meshed pods wait until a dry-run pod comes back injected.
        self.injector_ready = WebhookReady(
            f"{name}-injector-ready",
            WebhookReadyArgs(
                webhook="Linkerd's proxy injector",
                # The control plane's namespace is never injected (admission-webhooks: disabled).
                namespace=args.namespace,
                job_name="linkerd-injector-ready",
                probes=[self.injection_probe(args)],
                revision=args.chart_version,
            ),
            provider,
            after=[self.control_plane, control_ns, viz_ns],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ready = [self.control_plane, *self.injector_ready.ready]
        # Policy objects after their CRDs and the control plane (its policy validator webhook).
        self._authorization_after: list[pulumi.Resource] = [self.crds, self.control_plane]

        # --- the dashboard behind Traefik (meshed, HTTPS only) with basic auth ------------------
        traefik = Traefik(
            f"{name}-traefik",
            replace(
                args.traefik,
                namespace_labels=self.namespace_labels(),
                namespace_annotations=self.namespace_annotations(),
                depends_on=self.ready,
            ),
            provider,
            balancer,
            pulumi.ResourceOptions(parent=self),
        )
        # linkerd-viz as helm.v3.Release for the same reason as the control plane: the tap and
        # tap-injector certificates are generated by genCA at render time. Its pods' probes and
        # requests are declared (viz_workloads) for the offline plan's policy run: every viz
        # container has both probes upstream, and viz_values() sets their requests.
        self.viz = k8s.helm.v3.Release(
            f"{name}-viz",
            name="linkerd-viz",
            chart="linkerd-viz",
            version=args.chart_version,
            repository_opts=repository,
            namespace=viz_ns.metadata["name"],
            values=self.viz_values(args, traefik.host),
            max_history=10,
            # viz's pods are meshed: after the injector answers.
            opts=child_opts(self, provider, depends_on=self.ready),
        )
        password = random.RandomPassword(
            f"{name}-dashboard-password",
            length=32,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        auth_secret = k8s.core.v1.Secret(
            f"{name}-dashboard-auth",
            metadata={"name": "dashboard-basic-auth", "namespace": args.viz_namespace, "labels": dict(MANAGED_BY)},
            type="Opaque",
            # Traefik's basicAuth reads htpasswd lines from the `users` key; bcrypt only.
            string_data={"users": pulumi.Output.secret(htpasswd_line(args.dashboard_user, password.bcrypt_hash))},
            opts=child_opts(self, provider, depends_on=[viz_ns]),
        )
        auth = k8s.apiextensions.CustomResource(
            f"{name}-dashboard-auth-middleware",
            api_version="traefik.io/v1alpha1",
            kind="Middleware",
            metadata={"name": "dashboard-auth", "namespace": args.viz_namespace, "labels": dict(MANAGED_BY)},
            spec=self.auth_middleware_spec(),
            opts=child_opts(self, provider, depends_on=[*traefik.ready, viz_ns, auth_secret]),
        )
        tls_secret = self._dashboard_certificate(name, args, traefik.host, viz_ns)
        k8s.networking.v1.Ingress(
            f"{name}-dashboard-ingress",
            metadata={
                "name": "dashboard",
                "namespace": args.viz_namespace,
                "labels": dict(MANAGED_BY),
                "annotations": self.ingress_annotations(args),
            },
            spec=self.ingress_spec(traefik.ingress_class),
            opts=child_opts(self, provider, depends_on=[self.viz, auth, tls_secret, *traefik.ready]),
        )

        # --- who may reach what ---------------------------------------------------------------
        # The dashboard only from Traefik (meshed: its mTLS identity); Traefik's entry points from
        # outside the mesh (the balancer).
        self.authorize(
            Flow(
                "web",
                args.viz_namespace,
                {"linkerd.io/extension": "viz", "component": "web"},
                DASHBOARD_CONTAINER_PORT,
                from_ingress=True,
            ),
            depends_on=[viz_ns],
        )
        for entry_point, port in (("websecure", WEBSECURE_CONTAINER_PORT), ("web", WEB_CONTAINER_PORT)):
            self.authorize(
                Flow(f"traefik-{entry_point}", args.traefik.namespace, TRAEFIK_SELECTOR, port, from_outside=True),
                depends_on=traefik.ready,
            )

        self._network_policies(name, args, control_ns, cni_ns, viz_ns, traefik)

        self.trust_anchor_pem = anchor.cert_pem
        self.dashboard_url = traefik.url
        self.dashboard_user = pulumi.Output.from_input(args.dashboard_user)
        self.dashboard_password = pulumi.Output.secret(password.result)

        self.emojivoto_url = None
        if args.emojivoto is not None:
            demo = Emojivoto(
                f"{name}-emojivoto",
                EmojivotoArgs(
                    namespace=args.emojivoto.namespace,
                    version=args.emojivoto.version,
                    namespace_labels=self.namespace_labels(),
                    namespace_annotations=self.namespace_annotations(),
                    pod_security=self.app_pod_security,
                    depends_on=self.ready,
                ),
                provider,
                balancer,
                pulumi.ResourceOptions(parent=self),
            )
            for flow in demo.flows:
                self.authorize(flow, depends_on=[demo.namespace])
            # Its proxies' metrics, for viz's Prometheus (the demo's own flows are Emojivoto's).
            self._allow_scraping(
                f"{name}-emojivoto",
                args,
                args.emojivoto.namespace,
                {"app.kubernetes.io/part-of": "emojivoto"},
                demo.namespace,
            )
            self.emojivoto_url = demo.url

        self.register_outputs(
            {
                "dashboard_url": self.dashboard_url,
                "dashboard_user": self.dashboard_user,
                "dashboard_password": self.dashboard_password,
                "trust_anchor_pem": self.trust_anchor_pem,
                "emojivoto_url": self.emojivoto_url,
            }
        )

    @staticmethod
    def validate(args: LinkerdMeshArgs) -> None:  # noqa: C901 - one check per field
        for field_name in ("trust_anchor", "issuer"):
            validity: CertificateValidity = getattr(args, field_name)
            if not 0 <= validity.early_renewal_hours < validity.validity_hours:
                raise ValueError(
                    f"LinkerdMeshArgs.{field_name}: early_renewal_hours ({validity.early_renewal_hours}) must be "
                    f"at least 0 and less than validity_hours ({validity.validity_hours})"
                )
        if args.issuer.validity_hours > args.trust_anchor.validity_hours:
            raise ValueError("LinkerdMeshArgs.issuer must not outlive trust_anchor (validity_hours)")
        if not args.dashboard_user or ":" in args.dashboard_user:
            raise ValueError("LinkerdMeshArgs.dashboard_user must be non-empty and contain no ':'")
        if args.namespace == args.viz_namespace:
            raise ValueError("LinkerdMeshArgs.viz_namespace must differ from namespace")
        if args.cni_namespace in (args.namespace, args.viz_namespace, args.traefik.namespace):
            raise ValueError("LinkerdMeshArgs.cni_namespace must be a namespace of its own (it is privileged)")

    def _allow_scraping(
        self,
        name: str,
        args: LinkerdMeshArgs,
        namespace_name: str,
        pods: dict[str, str],
        ns: pulumi.Resource,
        ports: Sequence[int] = (),
        *,
        policy_name: str = "scrape",
    ) -> None:
        """viz's Prometheus may scrape these pods' proxies (and `ports`, their admin ports)."""
        allow_ingress(
            f"{name}-scrape-ingress",
            namespace_name,
            policy_name=policy_name,
            pods=pods,
            sources=[Peer.pods({"component": "prometheus"}, namespace=args.viz_namespace)],
            ports=[PROXY_ADMIN_PORT, *ports],
            parent=self,
            provider=self._provider,
            depends_on=[ns],
        )

    def _network_policies(
        self,
        name: str,
        args: LinkerdMeshArgs,
        control_ns: k8s.core.v1.Namespace,
        cni_ns: k8s.core.v1.Namespace,
        viz_ns: k8s.core.v1.Namespace,
        traefik: Traefik,
    ) -> None:
        """Default-deny ingress in Linkerd's namespaces, then exactly the flows the mesh needs.

        Proxies in every meshed namespace call the control plane and the API server (outside the
        pod network) calls the webhooks and tap's APIService: those ports are open to any
        source (each authenticates its caller). Admin ports and proxy metrics only to viz's
        Prometheus; the dashboard only to Traefik; Traefik to the balancer (any source).
        """
        provider = self._provider
        namespaces = (("control", control_ns, args.namespace), ("cni", cni_ns, args.cni_namespace))
        namespaces += (("viz", viz_ns, args.viz_namespace),)
        for role, ns, _ in namespaces:
            deny_ingress(f"{name}-{role}-deny-ingress", ns.metadata["name"], self, provider, depends_on=[ns])
        for component, (proxy_ports, api_ports, admin_ports) in CONTROL_PLANE_PORTS.items():
            allow_ingress(
                f"{name}-{component}-ingress",
                args.namespace,
                policy_name=component,
                pods={CONTROL_PLANE_COMPONENT: component},
                sources=[Peer.anywhere(), API_SERVER],
                ports=[*proxy_ports, *api_ports],
                parent=self,
                provider=provider,
                depends_on=[control_ns],
            )
            self._allow_scraping(
                f"{name}-{component}",
                args,
                args.namespace,
                {CONTROL_PLANE_COMPONENT: component},
                control_ns,
                admin_ports,
                policy_name=f"{component}-scrape",
            )
        for component, (api_ports, admin_ports) in VIZ_PORTS.items():
            pods = {"linkerd.io/extension": "viz", "component": component}
            if api_ports:
                allow_ingress(
                    f"{name}-viz-{component}-ingress",
                    args.viz_namespace,
                    policy_name=component,
                    pods=pods,
                    sources=[API_SERVER],
                    ports=api_ports,
                    parent=self,
                    provider=provider,
                    depends_on=[viz_ns],
                )
            self._allow_scraping(
                f"{name}-viz-{component}",
                args,
                args.viz_namespace,
                pods,
                viz_ns,
                admin_ports,
                policy_name=f"{component}-scrape",
            )
        # Inside viz: the dashboard asks metrics-api, which asks Prometheus.
        for client, server, port in (("web", "metrics-api", 8085), ("metrics-api", "prometheus", 9090)):
            allow_ingress(
                f"{name}-viz-{client}-to-{server}-ingress",
                args.viz_namespace,
                policy_name=f"{client}-to-{server}",
                pods={"linkerd.io/extension": "viz", "component": server},
                sources=[Peer.pods({"linkerd.io/extension": "viz", "component": client})],
                ports=[port],
                parent=self,
                provider=provider,
                depends_on=[viz_ns],
            )
        allow_ingress(
            f"{name}-dashboard-ingress-from-traefik",
            args.viz_namespace,
            policy_name="web-from-traefik",
            pods={"linkerd.io/extension": "viz", "component": "web"},
            sources=[Peer.namespace_of(args.traefik.namespace)],
            ports=[DASHBOARD_CONTAINER_PORT],
            parent=self,
            provider=provider,
            depends_on=[viz_ns],
        )
        traefik_ns = traefik.namespace
        deny_ingress(f"{name}-traefik-deny-ingress", args.traefik.namespace, self, provider, depends_on=[traefik_ns])
        allow_ingress(
            f"{name}-traefik-ingress",
            args.traefik.namespace,
            policy_name="traefik",
            pods=dict(TRAEFIK_SELECTOR),
            sources=[Peer.anywhere()],  # the balancer, whose clients' addresses arrive translated or not
            ports=[WEBSECURE_CONTAINER_PORT, WEB_CONTAINER_PORT],
            parent=self,
            provider=provider,
            depends_on=[traefik_ns],
        )
        self._allow_scraping(f"{name}-traefik", args, args.traefik.namespace, dict(TRAEFIK_SELECTOR), traefik_ns)

    def _policy(
        self,
        resource_name: str,
        kind: str,
        name: str,
        namespace_name: str,
        spec: dict[str, Any],
        after: Sequence[pulumi.Resource],
    ) -> k8s.apiextensions.CustomResource:
        """A policy.linkerd.io object, after its CRD and the policy validator that checks it."""
        version = "v1beta3" if kind == "Server" else "v1alpha1"
        return k8s.apiextensions.CustomResource(
            resource_name,
            api_version=f"{POLICY_GROUP}/{version}",
            kind=kind,
            metadata={"name": name, "namespace": namespace_name, "labels": dict(MANAGED_BY)},
            spec=spec,
            opts=child_opts(self, self._provider, depends_on=[*self._authorization_after, *after]),
        )

    def authorize(self, flow: Flow, depends_on: Sequence[pulumi.Resource] = ()) -> list[pulumi.Resource]:
        """Declare `flow`'s port as a Server and who may use it.

        Meshed clients (the flow's namespaces, and Traefik for `from_ingress`) through a
        MeshTLSAuthentication of their namespaces' identities; clients outside the mesh
        (`from_outside`) through a NetworkAuthentication of every network. A Server's port
        accepts only what an AuthorizationPolicy allows. `depends_on`: what creates the namespace.
        """
        prefix = f"{self._name}-{flow.namespace}-{flow.name}"
        server = self._policy(
            f"{prefix}-server",
            "Server",
            flow.name,
            flow.namespace,
            {"podSelector": {"matchLabels": dict(flow.selector)}, "port": flow.port, "proxyProtocol": flow.protocol},
            depends_on,
        )
        created: list[pulumi.Resource] = [server]
        target = {"group": POLICY_GROUP, "kind": "Server", "name": flow.name}
        client_namespaces = list(flow.clients)
        if flow.from_ingress:
            client_namespaces.append(self._ingress_namespace)
        grants: list[tuple[str, str, dict[str, Any]]] = []
        if client_namespaces:
            identities = [{"kind": "Namespace", "name": ns} for ns in dict.fromkeys(client_namespaces)]
            grants.append(("clients", "MeshTLSAuthentication", {"identityRefs": identities}))
        if flow.from_outside:
            grants.append(("anywhere", "NetworkAuthentication", {"networks": [{"cidr": c} for c in EVERY_NETWORK]}))
        for role, kind, spec in grants:
            name = f"{flow.name}-{role}"
            authentication = self._policy(f"{prefix}-{role}-authn", kind, name, flow.namespace, spec, depends_on)
            policy = self._policy(
                f"{prefix}-{role}",
                "AuthorizationPolicy",
                name,
                flow.namespace,
                {
                    "targetRef": target,
                    "requiredAuthenticationRefs": [{"group": POLICY_GROUP, "kind": kind, "name": name}],
                },
                [*depends_on, server, authentication],
            )
            created += [authentication, policy]
        return created

    @staticmethod
    def crds_values(args: LinkerdMeshArgs) -> dict[str, Any]:
        return {"installGatewayAPI": args.install_gateway_api}

    @staticmethod
    def injection_probe(args: LinkerdMeshArgs) -> AdmissionProbe:
        """A pod in viz's (meshed) namespace that must come back with init containers: injected,
        it has the network validator (and the proxy as a native sidecar); untouched, it has none.
        Restricted, like every pod there, so Pod Security admits it too."""
        return sidecar_injection_probe(args.viz_namespace, annotations={"linkerd.io/inject": "enabled"})

    @staticmethod
    def cni_values(args: LinkerdMeshArgs) -> dict[str, Any]:
        return {"resources": CNI_RESOURCES}

    @staticmethod
    def control_plane_values(
        args: LinkerdMeshArgs,
        trust_anchor_pem: pulumi.Input[str],
        issuer_pem: pulumi.Input[str],
        issuer_key_pem: pulumi.Input[str],
    ) -> dict[str, Any]:
        return {
            "identityTrustDomain": args.trust_domain,
            "identityTrustAnchorsPEM": trust_anchor_pem,
            "identity": {
                "issuer": {
                    "scheme": "linkerd.io/tls",
                    "tls": {"crtPEM": issuer_pem, "keyPEM": pulumi.Output.secret(issuer_key_pem)},
                },
            },
            # linkerd2-cni redirects traffic: no proxy-init (NET_ADMIN, NET_RAW) in any meshed pod,
            # only the unprivileged network-validator init container.
            "cniEnabled": True,
            "proxy": {"resources": PROXY_RESOURCES, "securityContext": PROXY_SECURITY_CONTEXT},
            # Each control-plane container and its own proxy (templates/destination.yaml,
            # identity.yaml, proxy-injector.yaml and heartbeat.yaml read these top-level keys,
            # which values.yaml only documents in comments; policyController.resources is a key).
            "destinationResources": CONTROLLER_RESOURCES,
            "destinationProxyResources": PROXY_RESOURCES,
            "spValidatorResources": CONTROLLER_RESOURCES,
            "identityResources": CONTROLLER_RESOURCES,
            "identityProxyResources": PROXY_RESOURCES,
            "proxyInjectorResources": CONTROLLER_RESOURCES,
            "proxyInjectorProxyResources": PROXY_RESOURCES,
            "heartbeatResources": CONTROLLER_RESOURCES,
            "policyController": {"resources": CONTROLLER_RESOURCES},
        }

    @staticmethod
    def viz_values(args: LinkerdMeshArgs, external_host: pulumi.Input[Optional[str]]) -> dict[str, Any]:
        return {
            "linkerdNamespace": args.namespace,
            # The namespace above already carries the metadata this hook Job would add.
            "createNamespaceMetadataJob": False,
            "metricsAPI": {"resources": CONTROLLER_RESOURCES},
            "tap": {"resources": CONTROLLER_RESOURCES},
            "tapInjector": {"resources": CONTROLLER_RESOURCES},
            "prometheus": {"resources": PROMETHEUS_RESOURCES},
            # The dashboard's own DNS-rebinding and websocket Origin checks stay on: it accepts the
            # address users reach it at (the balancer's), and its in-cluster names.
            "dashboard": {
                "enforcedHostRegexp": pulumi.Output.from_input(external_host).apply(
                    lambda host: dashboard_host_regexp(args.viz_namespace, host)
                ),
                "resources": CONTROLLER_RESOURCES,
            },
        }

    def _dashboard_certificate(
        self,
        name: str,
        args: LinkerdMeshArgs,
        host: pulumi.Output[Optional[str]],
        viz_ns: k8s.core.v1.Namespace,
    ) -> k8s.core.v1.Secret:
        """The Ingress's TLS Secret: a self-signed certificate for the balancer's address.

        The dashboard has no DNS name of its own here: the certificate names the address the
        balancer hands out (clients must accept it on first use).
        """
        return self_signed_tls_secret(
            f"{name}-dashboard-tls",
            secret_name=DASHBOARD_TLS_SECRET,
            namespace=args.viz_namespace,
            common_name="linkerd-dashboard",
            host=host,
            validity_hours=args.issuer.validity_hours,
            early_renewal_hours=args.issuer.early_renewal_hours,
            parent=self,
            provider=self._provider,
            depends_on=[viz_ns],
        )

    @staticmethod
    def auth_middleware_spec() -> dict[str, Any]:
        # removeHeader: the dashboard never sees the credentials.
        return {"basicAuth": {"secret": "dashboard-basic-auth", "removeHeader": True, "realm": "linkerd-viz"}}

    @staticmethod
    def ingress_annotations(args: LinkerdMeshArgs) -> dict[str, str]:
        return {
            # Traefik names CRD middlewares <namespace>-<name>@kubernetescrd. Only basic auth: Host
            # and Origin reach the dashboard as the browser sent them, for its own checks.
            "traefik.ingress.kubernetes.io/router.middlewares": f"{args.viz_namespace}-dashboard-auth@kubernetescrd",
            # Served on the HTTPS entry point only (the web entry point redirects there).
            "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
            "traefik.ingress.kubernetes.io/router.tls": "true",
        }

    @staticmethod
    def ingress_spec(ingress_class: str) -> dict[str, Any]:
        return {
            "ingressClassName": ingress_class,
            "tls": [{"secretName": DASHBOARD_TLS_SECRET}],
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": DASHBOARD_SERVICE, "port": {"number": DASHBOARD_PORT}}},
                            }
                        ]
                    }
                }
            ],
        }

    @staticmethod
    def namespace_labels() -> dict[str, str]:
        """Labels an application namespace carries for Linkerd: none (with linkerd-cni the proxy
        asks no Pod Security level of it; the namespace's owner picks one, restricted fits)."""
        return {}

    @staticmethod
    def namespace_annotations() -> dict[str, str]:
        """Annotations a meshed namespace carries: injection, and an authenticated default policy."""
        return dict(INJECT_ANNOTATIONS)

    def proxy_traffic(self) -> ProxyTraffic:
        """What a linkerd-proxy needs from NetworkPolicies: inbound from meshed clients, its admin
        port from viz's Prometheus, and the control plane (identity, destination, policy) out."""
        return ProxyTraffic(
            ingress=(
                (Peer.anywhere(), (PROXY_INBOUND_PORT,)),
                (Peer.namespace_of(self._viz_namespace), (PROXY_ADMIN_PORT,)),
            ),
            egress=((Peer.namespace_of(self._namespace), CONTROL_PLANE_PORTS),),
        )


def dashboard_host_regexp(viz_namespace: str, external_host: Optional[str] = None) -> str:
    """The Host pattern the dashboard accepts: the address users reach it at (the balancer's,
    once known), its in-cluster names, and localhost for `kubectl port-forward`."""
    service = rf"{DASHBOARD_SERVICE}\.{viz_namespace}\.svc"
    hosts = [r"localhost", r"127\.0\.0\.1", rf"{service}\.cluster\.local", service, r"\[::1\]"]
    if external_host:
        hosts.insert(0, re.escape(f"[{external_host}]" if ":" in external_host else external_host))
    return rf"^({'|'.join(hosts)})(:\d+)?$"


def htpasswd_line(user: str, bcrypt_hash: pulumi.Input[str]) -> pulumi.Output[str]:
    """`user:<bcrypt hash>`, one htpasswd line (Traefik accepts bcrypt's $2a$/$2y$ forms)."""
    return pulumi.Output.concat(user, ":", bcrypt_hash)


# --- what the charts run (for the offline plan's policy run; linkerd/linkerd2 at edge-26.8.3) ---


def kubernetes_resources(linkerd: Any) -> Optional[dict[str, Any]]:
    """The Linkerd charts' cpu/memory request/limit shape as the `resources` partials.resources renders."""
    if not isinstance(linkerd, dict):
        return None
    rendered: dict[str, dict[str, Any]] = {}
    for resource in ("cpu", "memory", "ephemeral-storage"):
        for key, section in (("request", "requests"), ("limit", "limits")):
            value = given(linkerd, resource, key)
            if value:
                rendered.setdefault(section, {})[resource] = value
    return rendered or None


@declares("linkerd-crds")
def crds_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """linkerd-crds renders CRDs only."""
    return []


@declares("linkerd2-cni")
def cni_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """The CNI node agent (templates/cni-plugin.yaml): install-cni has no probes upstream (a sleep loop
    after copying the plugin; the policy config exempts it by name); the repair controller stays off."""
    if given(release.values, "repairController", "enabled"):
        raise ValueError("the linkerd2-cni declaration does not cover repairController.enabled")
    install = ChartContainer("install-cni", resources=kubernetes_resources(given(release.values, "resources")))
    return [ChartWorkload("DaemonSet", "linkerd-cni", [install])]


#: The linkerd-control-plane chart's proxy defaults the proxy's probes read (values.yaml `proxy`;
#: tests compare them with the pinned chart). The injector gives every meshed pod the same proxy.
PROXY_CHART_DEFAULTS: dict[str, Any] = {
    "nativeSidecar": True,
    "await": True,
    "ports": {"admin": 4191, "inbound": 4143},
    "livenessProbe": {"initialDelaySeconds": 10, "timeoutSeconds": 1},
    "readinessProbe": {"initialDelaySeconds": 2, "timeoutSeconds": 1},
    "startupProbe": {"initialDelaySeconds": 0, "periodSeconds": 1, "failureThreshold": 120},
}
#: The chart's default timeoutSeconds of each control-plane container's probes (values.yaml
#: destinationController, spValidator, policyController, identity, proxyInjector).
CONTROLLER_PROBE_TIMEOUT = 1


def _merged(specific: Any, general: Any) -> Any:
    """Sprig's `merge specific general`: `specific` wins, key by key, at every depth."""
    if not isinstance(specific, dict) or not isinstance(general, dict):
        return general if specific is None else specific
    return {key: _merged(specific.get(key), general.get(key)) for key in {**general, **specific}}


def proxy_containers(proxy: Any, native_sidecar: bool, await_ready: bool) -> list[ChartContainer]:
    """partials.proxy and partials.network-validator (cniEnabled) for `proxy`, the values' proxy
    section over the chart's defaults: both take proxy.resources; a native sidecar also gets the
    startup probe when it awaits. (The templates' `set ... startupProbeInitialDelaySeconds` keys
    are read by no partial: the startup probe keeps proxy.startupProbe.)"""
    settings = _merged(proxy if isinstance(proxy, dict) else {}, PROXY_CHART_DEFAULTS)
    admin = settings["ports"]["admin"]
    resources = kubernetes_resources(settings.get("resources"))
    container = ChartContainer(
        "linkerd-proxy",
        resources=resources,
        liveness_probe=http_probe("/live", admin, **settings["livenessProbe"]),
        readiness_probe=http_probe("/ready", admin, **settings["readinessProbe"]),
        startup_probe=http_probe("/ready", admin, **settings["startupProbe"])
        if native_sidecar and await_ready
        else None,
        ports={"linkerd-proxy": settings["ports"]["inbound"], "linkerd-admin": admin},
        sidecar=native_sidecar,
    )
    return [ChartContainer("linkerd-network-validator", resources=resources, init=True), container]


def _controller(
    name: str, values: Any, probes: str, resources: str, live: str, admin: int | str, ports: dict[str, int]
) -> ChartContainer:
    """A control-plane container: /<live> and /ready on its admin port, initialDelaySeconds 10 and
    failureThreshold 7 fixed in the templates, timeoutSeconds from values[probes]."""

    def timeout(probe: str) -> dict[str, Any]:
        set_here = given(values, probes, probe, "timeoutSeconds")
        seconds = CONTROLLER_PROBE_TIMEOUT if set_here is None else set_here
        return {"timeoutSeconds": seconds} if seconds else {}

    return ChartContainer(
        name,
        resources=kubernetes_resources(given(values, *resources.split("."))),
        liveness_probe=http_probe(live, admin, initialDelaySeconds=10, **timeout("livenessProbe")),
        readiness_probe=http_probe("/ready", admin, failureThreshold=7, **timeout("readinessProbe")),
        ports=ports,
    )


@declares("linkerd-control-plane")
def control_plane_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """What linkerd-control-plane runs (templates/destination.yaml, identity.yaml, proxy-injector.yaml,
    heartbeat.yaml): each controller with its own proxy, whose resources are `<x>ProxyResources`
    over proxy.resources. identity's proxy is a regular container (the template turns
    nativeSidecar off); destination's and the injector's follow proxy.nativeSidecar."""
    values = release.values
    if not given(values, "cniEnabled"):
        raise ValueError("the linkerd-control-plane declaration covers cniEnabled: true only (no proxy-init)")
    proxy = given(values, "proxy") or {}

    def proxied(resources_key: str, native: bool, await_ready: bool) -> list[ChartContainer]:
        specific = given(values, resources_key)
        resources = _merged(specific, given(proxy, "resources")) if specific else given(proxy, "resources")
        return proxy_containers({**proxy, "resources": resources}, native, await_ready)

    native = _merged(given(proxy, "nativeSidecar"), PROXY_CHART_DEFAULTS["nativeSidecar"])
    await_ready = _merged(given(proxy, "await"), PROXY_CHART_DEFAULTS["await"])
    destination = [
        _controller(
            "destination",
            values,
            "destinationController",
            "destinationResources",
            "/ping",
            9996,
            {"dest-grpc": 8086, "dest-admin": 9996},
        ),
        _controller(
            "sp-validator",
            values,
            "spValidator",
            "spValidatorResources",
            "/ping",
            9997,
            {"sp-validator": 8443, "spval-admin": 9997},
        ),
        _controller(
            "policy",
            values,
            "policyController",
            "policyController.resources",
            "/live",
            "policy-admin",
            {"policy-grpc": 8090, "policy-admin": 9990, "policy-https": 9443},
        ),
        *proxied("destinationProxyResources", native, await_ready),
    ]
    identity = [
        _controller(
            "identity",
            values,
            "identity",
            "identityResources",
            "/ping",
            9990,
            {"ident-grpc": 8080, "ident-admin": 9990},
        ),
        *proxied("identityProxyResources", False, False),
    ]
    injector = [
        _controller(
            "proxy-injector",
            values,
            "proxyInjector",
            "proxyInjectorResources",
            "/ping",
            9995,
            {"proxy-injector": 8443, "injector-admin": 9995},
        ),
        *proxied("proxyInjectorProxyResources", native, await_ready),
    ]
    workloads = [
        ChartWorkload("Deployment", "linkerd-destination", destination),
        ChartWorkload("Deployment", "linkerd-identity", identity),
        ChartWorkload("Deployment", "linkerd-proxy-injector", injector),
    ]
    if not given(values, "disableHeartBeat"):
        heartbeat = ChartContainer("heartbeat", resources=kubernetes_resources(given(values, "heartbeatResources")))
        workloads.append(ChartWorkload("CronJob", "linkerd-heartbeat", [heartbeat]))
    return workloads


#: viz's containers (viz/charts/linkerd-viz/templates): values key, Deployment and container name,
#: admin port (/ping and /ready, initialDelaySeconds 10 and failureThreshold 7 in the templates),
#: the named ports.
VIZ_CONTAINERS = (
    ("metricsAPI", "metrics-api", 9995, {"http": 8085, "admin": 9995}),
    ("tap", "tap", 9998, {"grpc": 8088, "apiserver": 8089, "admin": 9998}),
    ("tapInjector", "tap-injector", 9995, {"tap-injector": 8443, "admin": 9995}),
    ("dashboard", "web", 9994, {"http": 8084, "admin": 9994}),
)


@declares("linkerd-viz")
def viz_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """What linkerd-viz runs: every pod asks for injection (linkerd.io/inject: enabled), so each gets
    the proxy the control plane's injector renders, from the control plane's proxy values
    (control_plane_values: PROXY_RESOURCES, the chart's probes, a native sidecar that awaits, as
    the viz namespace's proxy-await annotation also asks), with `<component>.proxy.resources`
    overriding the resources through the pod's config annotations."""
    values = release.values
    if given(values, "prometheus", "sidecarContainers"):
        raise ValueError("the linkerd-viz declaration does not cover prometheus.sidecarContainers")

    def injected(key: str) -> list[ChartContainer]:
        resources = _merged(given(values, key, "proxy", "resources"), PROXY_RESOURCES)
        return proxy_containers({"resources": resources}, native_sidecar=True, await_ready=True)

    workloads = []
    for key, name, admin, ports in VIZ_CONTAINERS:
        container = ChartContainer(
            name,
            resources=kubernetes_resources(given(values, key, "resources")),
            liveness_probe=http_probe("/ping", admin, initialDelaySeconds=10),
            readiness_probe=http_probe("/ready", admin, failureThreshold=7),
            ports=ports,
        )
        workloads.append(ChartWorkload("Deployment", name, [container, *injected(key)]))
    if given(values, "prometheus", "enabled") is not False:
        prometheus = ChartContainer(
            "prometheus",
            resources=kubernetes_resources(given(values, "prometheus", "resources")),
            liveness_probe=http_probe("/-/healthy", 9090, initialDelaySeconds=30, timeoutSeconds=30),
            readiness_probe=http_probe("/-/ready", 9090, initialDelaySeconds=30, timeoutSeconds=30),
            ports={"admin": 9090},
        )
        workloads.append(ChartWorkload("Deployment", "prometheus", [prometheus, *injected("prometheus")]))
    return workloads
