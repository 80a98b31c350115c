"""Linkerd: the service mesh, its viz dashboard behind basic auth, and the emojivoto demo (recipe 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components.balancer import Balancer
from components.ingress.traefik import Traefik, TraefikArgs
from components.kube import MANAGED_BY, PodSecurityLevel, child_opts, namespace
from components.mesh.emojivoto import Emojivoto, EmojivotoArgs
from components.network import Peer, ProxyTraffic

CHART_REPOSITORY = "https://helm.linkerd.io/edge"
#: Linkerd's proxy-init sets up iptables with NET_ADMIN/NET_RAW: only the privileged Pod
#: Security level admits that (without the linkerd-cni plugin). The control plane, viz and every
#: meshed namespace run it.
PROXY_INIT_POD_SECURITY: PodSecurityLevel = "privileged"
#: Injection is switched on per namespace by this ANNOTATION (Istio uses a label).
INJECT_ANNOTATIONS = {"linkerd.io/inject": "enabled"}
#: Key usages of a CA that signs certificates (and revocation lists) and nothing else.
CA_USES = ["cert_signing", "crl_signing"]
DASHBOARD_SERVICE = "web"
#: The proxy's inbound port (meshed clients may dial it directly) and its admin port (metrics,
#: scraped by linkerd-viz's Prometheus); the control plane's identity, destination and policy ports.
PROXY_INBOUND_PORT = 4143
PROXY_ADMIN_PORT = 4191
CONTROL_PLANE_PORTS = (8080, 8086, 8090)
DASHBOARD_PORT = 8084


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

    The viz dashboard is published by Traefik on the stack's balancer, behind basic auth with a
    generated password (stored as a bcrypt htpasswd line; exported only as a secret).
    """

    dashboard_url: pulumi.Output[Optional[str]]
    dashboard_user: pulumi.Output[str]
    dashboard_password: pulumi.Output[str]
    trust_anchor_pem: pulumi.Output[str]
    #: The Pod Security level a meshed application namespace needs (proxy-init, see above).
    app_pod_security: PodSecurityLevel = PROXY_INIT_POD_SECURITY
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
        repository = {"repo": CHART_REPOSITORY}

        control_ns = namespace(
            f"{name}-namespace",
            args.namespace,
            self,
            provider,
            pod_security=PROXY_INIT_POD_SECURITY,
            # What `linkerd install` puts on its namespace: the injector skips it, and the
            # extensions find the control plane by these labels.
            labels={
                "linkerd.io/is-control-plane": "true",
                "config.linkerd.io/admission-webhooks": "disabled",
                "linkerd.io/control-plane-ns": args.namespace,
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
            opts=child_opts(self, provider, depends_on=[self.crds], additional_secret_outputs=["values"]),
        )

        viz_ns = namespace(
            f"{name}-viz-namespace",
            args.viz_namespace,
            self,
            provider,
            pod_security=PROXY_INIT_POD_SECURITY,  # viz's pods are meshed
            # The metadata the chart's post-install Job would patch in, owned here instead, so the
            # namespace is a plain Pulumi resource and no hook Job runs.
            labels={"linkerd.io/extension": "viz"},
            annotations={**INJECT_ANNOTATIONS, "config.linkerd.io/proxy-await": "enabled"},
        )
        # linkerd-viz as helm.v3.Release for the same reason as the control plane: the tap and
        # tap-injector certificates are generated by genCA at render time.
        self.viz = k8s.helm.v3.Release(
            f"{name}-viz",
            name="linkerd-viz",
            chart="linkerd-viz",
            version=args.chart_version,
            repository_opts=repository,
            namespace=viz_ns.metadata["name"],
            values=self.viz_values(args),
            max_history=10,
            opts=child_opts(self, provider, depends_on=[self.control_plane]),
        )

        # --- the dashboard behind Traefik with basic auth -------------------------------------
        traefik = Traefik(f"{name}-traefik", args.traefik, provider, balancer, pulumi.ResourceOptions(parent=self))
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
        host = k8s.apiextensions.CustomResource(
            f"{name}-dashboard-host-middleware",
            api_version="traefik.io/v1alpha1",
            kind="Middleware",
            metadata={"name": "dashboard-host", "namespace": args.viz_namespace, "labels": dict(MANAGED_BY)},
            spec=self.host_middleware_spec(args),
            opts=child_opts(self, provider, depends_on=[*traefik.ready, viz_ns]),
        )
        k8s.networking.v1.Ingress(
            f"{name}-dashboard-ingress",
            metadata={
                "name": "dashboard",
                "namespace": args.viz_namespace,
                "labels": dict(MANAGED_BY),
                "annotations": {"traefik.ingress.kubernetes.io/router.middlewares": self.middlewares_annotation(args)},
            },
            spec=self.ingress_spec(traefik.ingress_class),
            opts=child_opts(self, provider, depends_on=[self.viz, auth, host, *traefik.ready]),
        )

        self.ready = [self.control_plane]
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
    def validate(args: LinkerdMeshArgs) -> None:
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

    @staticmethod
    def crds_values(args: LinkerdMeshArgs) -> dict[str, Any]:
        return {"installGatewayAPI": args.install_gateway_api}

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
        }

    @staticmethod
    def viz_values(args: LinkerdMeshArgs) -> dict[str, Any]:
        return {
            "linkerdNamespace": args.namespace,
            # The namespace above already carries the metadata this hook Job would add.
            "createNamespaceMetadataJob": False,
            # Only the in-cluster name is accepted; the host middleware rewrites Host to it, so
            # the check holds whatever address the balancer hands out.
            "dashboard": {"enforcedHostRegexp": dashboard_host_regexp(args.viz_namespace)},
        }

    @staticmethod
    def auth_middleware_spec() -> dict[str, Any]:
        # removeHeader: the dashboard never sees the credentials.
        return {"basicAuth": {"secret": "dashboard-basic-auth", "removeHeader": True, "realm": "linkerd-viz"}}

    @staticmethod
    def host_middleware_spec(args: LinkerdMeshArgs) -> dict[str, Any]:
        # The dashboard rejects requests whose Host does not match its enforced pattern (DNS
        # rebinding protection), and its websockets compare Origin with Host: send the in-cluster
        # host, drop Origin (an empty value removes a header in Traefik).
        return {
            "headers": {
                "customRequestHeaders": {
                    "Host": f"{DASHBOARD_SERVICE}.{args.viz_namespace}.svc.cluster.local:{DASHBOARD_PORT}",
                    "Origin": "",
                }
            }
        }

    @staticmethod
    def middlewares_annotation(args: LinkerdMeshArgs) -> str:
        # Traefik names CRD middlewares <namespace>-<name>@kubernetescrd; auth runs first.
        return ",".join(f"{args.viz_namespace}-{mw}@kubernetescrd" for mw in ("dashboard-auth", "dashboard-host"))

    @staticmethod
    def ingress_spec(ingress_class: str) -> dict[str, Any]:
        return {
            "ingressClassName": ingress_class,
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
        """Linkerd needs no namespace labels (injection is an annotation; the level is app_pod_security)."""
        return {}

    @staticmethod
    def namespace_annotations() -> dict[str, str]:
        """Annotations an application namespace carries to get Linkerd proxies injected."""
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


def dashboard_host_regexp(viz_namespace: str) -> str:
    """The Host pattern the dashboard accepts: its in-cluster names (and localhost for port-forward)."""
    service = rf"{DASHBOARD_SERVICE}\.{viz_namespace}\.svc"
    return rf"^(localhost|127\.0\.0\.1|{service}\.cluster\.local|{service}|\[::1\])(:\d+)?$"


def htpasswd_line(user: str, bcrypt_hash: pulumi.Input[str]) -> pulumi.Output[str]:
    """`user:<bcrypt hash>`, one htpasswd line (Traefik accepts bcrypt's $2a$/$2y$ forms)."""
    return pulumi.Output.concat(user, ":", bcrypt_hash)
