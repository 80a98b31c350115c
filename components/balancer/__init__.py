"""How LoadBalancer Services get an external address, and the one way this program exposes one.

`Balancer` is a value: the annotations and load-balancer class every exposed Service carries,
and the resources an exposed Service must wait for (MetalLB's address pool; nothing for cloud
balancers). `Balancer.expose()` is the intent: "put this selector behind an external address"
and hand back the Service and its reachable URL. `balancer_for()` picks the balancer the stack's
`balancer` setting names, installing MetalLB where that is the choice.

The URL is built from whatever the provider reports (an AWS hostname or a MetalLB IP; see
components.kube.load_balancer_url): unknown during preview, never invented.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.balancer.metallb import MetalLB, MetalLBArgs
from components.kube import MANAGED_BY, child_opts, load_balancer_host, load_balancer_url
from settings import Settings
from settings.traffic import ExposureSettings

__all__ = [
    "AWS_NLB_ANNOTATIONS",
    "AWS_NLB_CLASS",
    "Balancer",
    "Exposed",
    "ExposureSettings",
    "Port",
    "balancer_for",
    "load_balancer_host",
]

#: Annotations that hand a Service to the AWS Load Balancer Controller as an NLB with IP targets
#: (the scheme is added per stack). "external" keeps the legacy in-tree controller off it.
AWS_NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
}
AWS_NLB_TARGET_TYPE = "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"
AWS_NLB_SCHEME = "service.beta.kubernetes.io/aws-load-balancer-scheme"
#: The in-tree AWS cloud controller (kops' `cloud` balancer) makes an internal ELB/NLB with this.
AWS_INTERNAL = "service.beta.kubernetes.io/aws-load-balancer-internal"
#: The AWS Load Balancer Controller's default class. Stated on the Service because the
#: controller's mutating webhook sets it on create anyway: declared here, what Pulumi applies
#: matches the live object (the field is immutable), and no other balancer ever picks the
#: Service up, whether or not the webhook is enabled (chart value enableServiceMutatorWebhook).
AWS_NLB_CLASS = "service.k8s.aws/nlb"


@dataclass(frozen=True)
class Port:
    """One port of an exposed Service."""

    name: str
    port: int
    target_port: int
    protocol: Literal["TCP", "UDP"] = "TCP"

    def __post_init__(self) -> None:
        for field_name in ("port", "target_port"):
            value = getattr(self, field_name)
            if not 1 <= value <= 65535:
                raise ValueError(f"Port.{field_name} must be within 1..65535, not {value}")

    def render(self) -> dict[str, Any]:
        return {"name": self.name, "port": self.port, "targetPort": self.target_port, "protocol": self.protocol}


@dataclass(frozen=True)
class Exposed:
    """An exposed Service and the URL its first port is reachable at."""

    service: k8s.core.v1.Service
    #: scheme://host-or-ip:port; unknown until the balancer assigns an address.
    url: pulumi.Output[Optional[str]]
    #: The address alone (hostname or IP).
    host: pulumi.Output[Optional[str]]


@dataclass(frozen=True)
class Balancer:
    """What every exposed Service needs from the stack's balancer."""

    kind: Literal["metallb", "aws-nlb", "cloud"]
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: spec.loadBalancerClass of exposed Services; None leaves it to the cluster's default.
    load_balancer_class: Optional[str] = None
    #: Exposed Services depend on these (MetalLB's address pool must exist to hand out an IP).
    ready: Sequence[pulumi.Resource] = ()
    #: Who may reach a Service exposed without an exposure of its own (see `exposed_as`).
    exposure: ExposureSettings = ExposureSettings()

    @classmethod
    def cloud(cls) -> Balancer:
        """The cloud controller's default balancer (kops on AWS: a Classic/NLB from the in-tree controller)."""
        return cls(kind="cloud")

    @classmethod
    def aws_nlb(
        cls,
        scheme: Literal["internet-facing", "internal"],
        controller: Sequence[pulumi.Resource] = (),
        target_type: Literal["ip", "instance"] = "ip",
    ) -> Balancer:
        """An NLB per Service from the AWS Load Balancer Controller, its scheme always stated.

        `controller`: what installs the controller. Its Service webhook fails closed, so Services
        created before it is ready would be refused. `target_type`: "ip" registers pod IPs, which
        needs pods addressed from the VPC (the Amazon VPC CNI); "instance" registers the nodes'
        NodePorts and works with any pod network.
        """
        if scheme not in ("internet-facing", "internal"):
            raise ValueError(f"Balancer.aws_nlb: scheme must be internet-facing or internal, not {scheme!r}")
        if target_type not in ("ip", "instance"):
            raise ValueError(f"Balancer.aws_nlb: target_type must be ip or instance, not {target_type!r}")
        return cls(
            kind="aws-nlb",
            annotations={**AWS_NLB_ANNOTATIONS, AWS_NLB_TARGET_TYPE: target_type, AWS_NLB_SCHEME: scheme},
            load_balancer_class=AWS_NLB_CLASS,
            ready=controller,
        )

    @classmethod
    def metallb(cls, metallb: MetalLB) -> Balancer:
        """Addresses from a MetalLB pool; Services wait until the pool and its advertisement exist."""
        return cls(kind="metallb", load_balancer_class=metallb.load_balancer_class, ready=metallb.ready)

    def exposed_as(self, exposure: ExposureSettings) -> Balancer:
        """This balancer, exposing Services as `exposure` says unless they bring their own."""
        return dataclasses.replace(self, exposure=exposure)

    def scheme_for(self, exposure: Optional[ExposureSettings] = None) -> Optional[str]:
        """internet-facing or internal: the exposure's own scheme, else this balancer's default.

        aws-nlb: the stack's nlb.scheme; cloud: internal (the in-tree controller would make an
        internet-facing one); MetalLB: None, the pool's addresses decide.
        """
        chosen = (exposure or self.exposure).scheme
        if chosen is not None:
            return chosen
        if self.kind == "aws-nlb":
            return self.annotations.get(AWS_NLB_SCHEME)
        if self.kind == "cloud":
            return "internal"
        return None

    def service_annotations(self, exposure: Optional[ExposureSettings] = None) -> dict[str, str]:
        """Annotations an exposed Service carries (a fresh dict, safe to extend)."""
        annotations = dict(self.annotations)
        scheme = self.scheme_for(exposure)
        if self.kind == "aws-nlb" and scheme is not None:
            annotations[AWS_NLB_SCHEME] = scheme
        elif self.kind == "cloud" and scheme == "internal":
            annotations[AWS_INTERNAL] = "true"
        return annotations

    def service_spec(
        self, selector: Mapping[str, str], ports: Sequence[Port], exposure: Optional[ExposureSettings] = None
    ) -> dict[str, Any]:
        """The spec of a LoadBalancer Service behind this balancer, open to the exposure's source ranges."""
        spec: dict[str, Any] = {
            "type": "LoadBalancer",
            "selector": dict(selector),
            "ports": [port.render() for port in ports],
        }
        if self.load_balancer_class:
            spec["loadBalancerClass"] = self.load_balancer_class
        source_ranges = (exposure or self.exposure).source_ranges
        if source_ranges:
            spec["loadBalancerSourceRanges"] = list(source_ranges)
        return spec

    def expose(
        self,
        name: str,
        *,
        namespace: pulumi.Input[str],
        selector: Mapping[str, str],
        port: int,
        target_port: Optional[int] = None,
        parent: Optional[pulumi.Resource],
        provider: pulumi.ProviderResource,
        scheme: str = "http",
        port_name: str = "http",
        extra_ports: Sequence[Port] = (),
        labels: Optional[Mapping[str, str]] = None,
        annotations: Optional[Mapping[str, str]] = None,
        resource_name: Optional[str] = None,
        depends_on: Sequence[pulumi.Resource] = (),
        exposure: Optional[ExposureSettings] = None,
    ) -> Exposed:
        """A LoadBalancer Service `name` in `namespace` sending `port` to `target_port` of `selector`'s pods.

        The URL is `scheme://<address>:port`. `annotations` are added to the balancer's own (an
        NLB listener's TLS certificate, say). `depends_on` names what must exist first (the
        namespace's owner); the balancer's own readiness is added here. `exposure`: who may reach
        it (the balancer's own `exposure` when None): its scheme and loadBalancerSourceRanges.
        """
        if not selector:
            raise ValueError(f"expose({name!r}): selector must not be empty (it would select every pod)")
        ports = [Port(port_name, port, target_port or port), *extra_ports]
        if len({p.name for p in ports}) != len(ports) or len({p.port for p in ports}) != len(ports):
            raise ValueError(f"expose({name!r}): port names and numbers must be unique")
        service = k8s.core.v1.Service(
            resource_name or name,
            metadata={
                "name": name,
                "namespace": namespace,
                "labels": {**MANAGED_BY, **(labels or {})},
                "annotations": {**self.service_annotations(exposure), **(annotations or {})},
            },
            spec=self.service_spec(selector, ports, exposure),
            opts=child_opts(parent, provider, depends_on=[*self.ready, *depends_on]),
        )
        return Exposed(service=service, url=load_balancer_url(service, scheme, port), host=load_balancer_host(service))


def balancer_for(
    name: str,
    settings: Settings,
    provider: pulumi.ProviderResource,
    cluster_ready: Sequence[pulumi.Resource] = (),
    opts: Optional[pulumi.ResourceOptions] = None,
) -> Balancer:
    """The balancer the stack's `balancer` setting names; MetalLB is installed here when chosen.

    `cluster_ready`: what the cluster runs for its own balancer (the cluster component's
    `load_balancer_ready`: the AWS Load Balancer Controller on EKS).
    """
    if settings.balancer == "metallb":
        assert settings.metallb is not None  # settings validation guarantees it
        section = settings.metallb
        metallb = MetalLB(
            name,
            MetalLBArgs(
                addresses=section.addresses,
                chart_version=section.chart_version,
                namespace=section.namespace,
                pool_name=section.pool_name,
                auto_assign=section.auto_assign,
                avoid_buggy_ips=section.avoid_buggy_ips,
                load_balancer_class=section.load_balancer_class,
            ),
            provider,
            opts,
        )
        return Balancer.metallb(metallb)
    if settings.balancer == "aws-nlb":
        assert settings.nlb is not None  # settings validation guarantees it
        return Balancer.aws_nlb(settings.nlb.scheme, controller=cluster_ready, target_type=nlb_target_type(settings))
    return Balancer(kind="cloud", ready=cluster_ready)


def nlb_target_type(settings: Settings) -> Literal["ip", "instance"]:
    """IP targets where pod IPs are VPC addresses (EKS, kops with amazonvpc networking), else instance.

    With an overlay pod network (kops' default cilium, calico, kubenet) the pod IPs are not in
    the VPC, and the NLB cannot register or reach them as targets.
    """
    if settings.cluster == "kops" and settings.kops is not None and settings.kops.networking != "amazonvpc":
        return "instance"
    return "ip"
