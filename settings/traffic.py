"""Settings of the traffic layer: the load balancer, the service mesh and the dashboard ingress.

Sections: `scaleplane:metallb` (required iff balancer is metallb), `scaleplane:nlb` (required iff
balancer is aws-nlb), `scaleplane:istio` (only with mesh istio), `scaleplane:linkerd` (only with
mesh linkerd). Chart versions default to the pins in the project's reference data.
"""

from __future__ import annotations

import ipaddress
from itertools import pairwise
from typing import Annotated, Literal, Optional, Self, Union

from pydantic import AfterValidator, Field, model_validator

from settings.base import ChartVersion, DnsLabel, check_replica_range, settings

IpNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IpAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

#: What Kubernetes accepts as spec.loadBalancerClass: a qualified name, [DNS-subdomain prefix/]name.
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


def address_bounds(text: str) -> tuple[IpAddress, IpAddress]:
    """First and last address of a MetalLB range: a CIDR ("10.0.0.0/28") or "a.b.c.d-a.b.c.e"."""
    if "-" in text:
        first_text, _, last_text = text.partition("-")
        try:
            first = ipaddress.ip_address(first_text.strip())
            last = ipaddress.ip_address(last_text.strip())
        except ValueError as error:
            raise ValueError(f"{text!r} is not a valid address range: {error}") from None
        if first.version != last.version:
            raise ValueError(f"{text!r} mixes IPv{first.version} and IPv{last.version} addresses")
        if first > last:  # type: ignore[operator] - same family checked above
            raise ValueError(f"{text!r} starts after it ends")
        return first, last
    try:
        network: IpNetwork = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as error:
        raise ValueError(f"{text!r} is neither a CIDR nor a 'first-last' range: {error}") from None
    return network.network_address, network.broadcast_address


def _well_formed(text: str) -> str:
    address_bounds(text)
    return text


#: One MetalLB address range, exactly as MetalLB's IPAddressPool spec.addresses takes it.
AddressRange = Annotated[str, AfterValidator(_well_formed)]


@settings
class MetalLBSettings:
    """MetalLB in layer-2 mode: the addresses it may hand to LoadBalancer Services."""

    #: Address ranges (CIDRs or "first-last"), one family each, none overlapping another.
    addresses: Annotated[tuple[AddressRange, ...], Field(min_length=1)]
    chart_version: ChartVersion = "0.16.1"
    namespace: DnsLabel = "metallb-system"
    #: Name of the IPAddressPool (and of its L2Advertisement).
    pool_name: DnsLabel = "default"
    #: False: only Services that ask for this pool (metallb.io/address-pool) get an address.
    auto_assign: bool = True
    #: Skip the .0 and .255 addresses some buggy consumer routers drop.
    avoid_buggy_ips: bool = False
    #: None: MetalLB serves every LoadBalancer Service without a class. Set it when the cluster
    #: runs another balancer too (k3s's servicelb, a cloud controller); exposed Services then name it.
    load_balancer_class: Optional[Annotated[str, Field(pattern=QUALIFIED_NAME, max_length=317)]] = None

    @model_validator(mode="after")
    def _ranges_do_not_overlap(self) -> Self:
        bounds = sorted(
            ((address_bounds(text), text) for text in self.addresses),
            key=lambda item: (item[0][0].version, int(item[0][0])),
        )
        for (previous, previous_text), (current, current_text) in pairwise(bounds):
            if previous[0].version == current[0].version and int(current[0]) <= int(previous[1]):
                raise ValueError(f"addresses {previous_text!r} and {current_text!r} overlap")
        return self


def _cidr(text: str) -> str:
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a CIDR: {error}") from None
    return text


#: A client address block, as spec.loadBalancerSourceRanges takes it ("203.0.113.0/24").
Cidr = Annotated[str, AfterValidator(_cidr)]
Scheme = Literal["internet-facing", "internal"]


@settings
class ExposureSettings:
    """Who may reach one LoadBalancer Service.

    `scheme` None is the balancer's default: aws-nlb takes scaleplane:nlb.scheme; cloud (the
    in-tree AWS controller on kops) is internal; MetalLB hands out addresses of its pool, so
    there the scheme only records what that pool is. `sourceRanges` is the Service's
    spec.loadBalancerSourceRanges: the balancer (NLB security group, in-tree ELB security group,
    kube-proxy for MetalLB) admits only those clients. Empty: whoever can route to it.
    """

    scheme: Optional[Scheme] = None
    source_ranges: tuple[Cidr, ...] = ()


@settings
class NlbSettings:
    """AWS Network Load Balancers made by the AWS Load Balancer Controller (installed with EKS)."""

    #: No default on purpose: whether Services face the internet is a decision, not a fallback.
    scheme: Literal["internet-facing", "internal"]


#: An ACM certificate's ARN (any partition), as the NLB listener takes it.
AcmCertificateArn = Annotated[
    str, Field(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$")
]
#: A Secret's name (a DNS subdomain).
SecretName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]


@settings
class GatewayTlsSettings:
    """Where the ingress gateway's HTTPS certificate comes from (port 80 always redirects to HTTPS).

    `certificateArn`: an ACM certificate; the AWS NLB terminates TLS on 443 with it (aws-nlb
    only). `credentialName`: a kubernetes.io/tls Secret of yours in the gateway namespace (from
    cert-manager, say); the gateway terminates TLS with it. Neither: the program generates a
    self-signed certificate (pulumi-tls) for the gateway, which browsers will not trust; a
    production stack plans with it and warns until one of the two is set.
    """

    certificate_arn: Optional[AcmCertificateArn] = None
    credential_name: Optional[SecretName] = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.certificate_arn is not None and self.credential_name is not None:
            raise ValueError("set certificateArn (TLS at the NLB) or credentialName (TLS at the gateway), not both")
        return self


@settings
class IstioGatewaySettings:
    """The Istio ingress gateway (the `gateway` chart), its own namespace and autoscaling."""

    namespace: DnsLabel = "istio-ingress"
    min_replicas: Annotated[int, Field(ge=1, le=100)] = 1
    max_replicas: Annotated[int, Field(ge=1, le=100)] = 5
    tls: GatewayTlsSettings = GatewayTlsSettings()
    #: The gateway's balancer: a production stack's one entry point open to the internet.
    exposure: ExposureSettings = ExposureSettings()

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        check_replica_range(self.min_replicas, self.max_replicas)
        return self


@settings
class IstioSettings:
    """Istio from its Helm charts: base (CRDs), istiod (control plane), gateway (ingress)."""

    #: One version for all three charts; 1.30.3 is the pinned reference. Also the istio/istio
    #: git tag the CRDs are read from, so no "v" prefix (Istio tags have none).
    version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$")] = "1.30.3"
    namespace: DnsLabel = "istio-system"
    #: istiod replicas (the chart's HPA is turned off so this is the count).
    pilot_replicas: Annotated[int, Field(ge=1, le=10)] = 1
    gateway: IstioGatewaySettings = IstioGatewaySettings()
    #: The Istio CNI node agent's namespace: it mounts host paths and needs NET_ADMIN/SYS_ADMIN,
    #: so that namespace alone enforces the privileged Pod Security level.
    cni_namespace: DnsLabel = "istio-cni"

    @model_validator(mode="after")
    def _gateway_runs_apart(self) -> Self:
        named = [("namespace", self.namespace), ("gateway.namespace", self.gateway.namespace)]
        named.append(("cniNamespace", self.cni_namespace))
        owners: dict[str, str] = {}
        for key, name in named:
            if name in owners:
                raise ValueError(f"{key} must differ from {owners[name]} ({name!r}): each runs in its own namespace")
            owners[name] = key
        return self


@settings
class CertificateSettings:
    """Validity of a generated certificate, and how long before expiry `pulumi up` renews it."""

    validity_hours: Annotated[int, Field(ge=24, le=24 * 365 * 20)]
    #: Within this many hours of expiry, the next `pulumi up` replaces the certificate.
    early_renewal_hours: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _renewal_inside_validity(self) -> Self:
        if self.early_renewal_hours >= self.validity_hours:
            raise ValueError(
                f"earlyRenewalHours ({self.early_renewal_hours}) must be less than "
                f"validityHours ({self.validity_hours})"
            )
        return self


@settings
class TraefikSettings:
    """Traefik, the ingress controller in front of the Linkerd dashboard."""

    chart_version: ChartVersion = "41.3.0"
    namespace: DnsLabel = "traefik"
    replicas: Annotated[int, Field(ge=1, le=10)] = 1


@settings
class EmojivotoSettings:
    """Linkerd's demo application: emoji, voting, web and vote-bot in their own namespace."""

    enabled: bool = False
    namespace: DnsLabel = "emojivoto"
    #: Tag of the docker.l5d.io/buoyantio/emojivoto-* images.
    version: Annotated[str, Field(pattern=r"^v[0-9]+$")] = "v11"


@settings
class LinkerdSettings:
    """Linkerd from its edge Helm charts, with a generated trust anchor and issuer."""

    #: Edge chart version (the Helm repository's versioning: edge-26.8.3 is chart 2026.8.3).
    chart_version: ChartVersion = "2026.8.3"
    namespace: DnsLabel = "linkerd"
    viz_namespace: DnsLabel = "linkerd-viz"
    #: The linkerd2-cni node agent's namespace (host paths: the only privileged one).
    cni_namespace: DnsLabel = "linkerd-cni"
    #: Install the Gateway API CRDs Linkerd's policy controller needs, through linkerd-crds.
    #: Turn off where the cluster already has them (for example from another gateway).
    install_gateway_api: bool = True
    #: The self-signed root: long-lived; rotating it means re-issuing every proxy certificate.
    trust_anchor: CertificateSettings = CertificateSettings(validity_hours=87_600, early_renewal_hours=2_160)
    #: The identity issuer the root signs: shorter-lived, renewed a month before it expires.
    issuer: CertificateSettings = CertificateSettings(validity_hours=8_760, early_renewal_hours=720)
    #: Basic-auth user of the dashboard (the password is generated and exported as a secret).
    dashboard_user: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = "admin"
    traefik: TraefikSettings = TraefikSettings()
    emojivoto: EmojivotoSettings = EmojivotoSettings()
    #: The balancers of the dashboard's ingress and of emojivoto's web front.
    exposure: ExposureSettings = ExposureSettings()

    @model_validator(mode="after")
    def _namespaces_are_distinct(self) -> Self:
        # Each is created (and deleted) as its own Namespace resource: one name used twice fails.
        owners: dict[str, str] = {}
        named = [
            ("namespace", self.namespace),
            ("vizNamespace", self.viz_namespace),
            ("cniNamespace", self.cni_namespace),
            ("traefik.namespace", self.traefik.namespace),
        ]
        if self.emojivoto.enabled:
            named.append(("emojivoto.namespace", self.emojivoto.namespace))
        for key, name in named:
            if name in owners:
                raise ValueError(f"{key} {name!r} is already the {owners[name]}; each needs its own namespace")
            owners[name] = key
        return self

    @model_validator(mode="after")
    def _issuer_inside_anchor(self) -> Self:
        if self.issuer.validity_hours > self.trust_anchor.validity_hours:
            raise ValueError(
                f"issuer.validityHours ({self.issuer.validity_hours}) must not exceed "
                f"trustAnchor.validityHours ({self.trust_anchor.validity_hours})"
            )
        return self
