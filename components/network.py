"""NetworkPolicy builders: deny a namespace's ingress by default, then allow each flow by name.

The intent reads at the call site:

    deny_ingress(f"{name}-deny-ingress", namespace, self, provider)
    allow_ingress(f"{name}-web-to-mongodb", namespace, pods={"app": "mongodb"},
                  sources=[Peer.pods({"app": "todo"})], ports=[27017], parent=self, provider=provider)
    limit_egress(f"{name}-mongodb-egress", namespace, pods={"app": "mongodb"}, parent=self, provider=provider)

A `Peer` is who may connect: pods by label (in the policy's namespace or another, by name),
whole namespaces, address blocks, or `Peer.anywhere()`. Traffic from outside the pod network
(the API server calling a webhook or an aggregated API, a kubelet, a balancer whose clients'
addresses are translated on the way in) cannot be matched by a pod or namespace selector: such
a port is allowed from anywhere, which renders a rule without `from`.

Kubelet probes are not subject to NetworkPolicy on the common CNIs (Calico, Cilium, the VPC CNI's
policy agent and kube-router all admit traffic from the node's own address), so no rule here
allows them. Policies are additive: a pod selected by any ingress policy accepts only the union
of what the policies selecting it allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import pulumi
import pulumi_kubernetes as k8s

from components.kube import MANAGED_BY, child_opts

#: The label every namespace carries with its own name (set by the API server since 1.22).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: CoreDNS (and kube-dns) pods, as every common distribution labels them.
KUBE_DNS_SELECTOR = {"k8s-app": "kube-dns"}
DNS_PORT = 53

PortRef = Union[int, str]


@dataclass(frozen=True)
class Peer:
    """One source (or destination) of traffic a policy allows."""

    #: Pods by label; None with `namespace` set: every pod of that namespace.
    selector: Optional[Mapping[str, str]] = None
    #: A namespace by name; None: the policy's own namespace.
    namespace: Optional[pulumi.Input[str]] = None
    #: Address blocks (CIDRs); exclusive with the selectors.
    cidrs: tuple[str, ...] = ()
    #: Any source at all: the rule has no `from` (or `to`).
    any_source: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        kinds = sum((self.selector is not None or self.namespace is not None, bool(self.cidrs), self.any_source))
        if kinds != 1:
            raise ValueError("Peer: give pods/namespace, cidrs, or anywhere; exactly one of them")
        if self.selector is not None and not self.selector and self.namespace is None:
            raise ValueError("Peer.selector must not be empty in the policy's own namespace; use Peer.namespace_of")

    @classmethod
    def pods(cls, selector: Mapping[str, str], namespace: Optional[pulumi.Input[str]] = None) -> Peer:
        """Pods labelled `selector`, in the policy's namespace or the one named."""
        return cls(selector=dict(selector), namespace=namespace)

    @classmethod
    def namespace_of(cls, namespace: pulumi.Input[str]) -> Peer:
        """Every pod of the namespace named `namespace`."""
        return cls(namespace=namespace)

    @classmethod
    def addresses(cls, *cidrs: str) -> Peer:
        """Clients from these address blocks (outside the pod network, typically)."""
        if not cidrs:
            raise ValueError("Peer.addresses needs at least one CIDR")
        return cls(cidrs=tuple(cidrs))

    @classmethod
    def anywhere(cls) -> Peer:
        """Any source: the API server, kubelets, a balancer that translates client addresses."""
        return cls(any_source=True)

    def render(self) -> list[dict[str, Any]]:
        """The NetworkPolicyPeer entries of this peer (empty for `anywhere`)."""
        if self.any_source:
            return []
        if self.cidrs:
            return [{"ipBlock": {"cidr": cidr}} for cidr in self.cidrs]
        peer: dict[str, Any] = {}
        if self.namespace is not None:
            peer["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: self.namespace}}
        if self.selector is not None:
            peer["podSelector"] = {"matchLabels": dict(self.selector)}
        return [peer]


#: The cluster's DNS servers.
KUBE_DNS = Peer.pods(KUBE_DNS_SELECTOR, namespace="kube-system")
#: The API server calling a webhook or an aggregated API: it is outside the pod network (its
#: address is the control plane's, which the program does not know), so only "anywhere" matches.
API_SERVER = Peer.anywhere()


Flow = tuple[Peer, tuple[PortRef, ...]]


@dataclass(frozen=True)
class ProxyTraffic:
    """What an injected mesh proxy needs from the network, beyond the application's own flows."""

    #: (who, ports) the proxy accepts: its inbound and admin ports.
    ingress: tuple[Flow, ...] = ()
    #: (where, ports) the proxy connects to: its control plane. Only pods whose egress is
    #: limited need them spelled out.
    egress: tuple[Flow, ...] = ()


#: Pods without an injected proxy need nothing more.
NO_PROXY = ProxyTraffic()


def _ports(ports: Sequence[PortRef], protocol: str = "TCP") -> list[dict[str, Any]]:
    if not ports:
        raise ValueError("a NetworkPolicy rule needs at least one port (no rule here opens every port)")
    for port in ports:
        if isinstance(port, int) and not 1 <= port <= 65535:
            raise ValueError(f"NetworkPolicy port must be within 1..65535, not {port}")
    return [{"port": port, "protocol": protocol} for port in ports]


def _rule(direction: str, peers: Sequence[Peer], ports: Sequence[PortRef]) -> dict[str, Any]:
    if not peers:
        raise ValueError("a NetworkPolicy rule needs at least one Peer (Peer.anywhere() for any source)")
    rule: dict[str, Any] = {"ports": _ports(ports)}
    if not any(peer.any_source for peer in peers):
        rule[direction] = [entry for peer in peers for entry in peer.render()]
    return rule


def _selector(pods: Optional[Mapping[str, str]]) -> dict[str, Any]:
    return {"matchLabels": dict(pods)} if pods else {}


def _policy(
    name: str,
    policy_name: str,
    namespace: pulumi.Input[str],
    spec: dict[str, Any],
    parent: pulumi.Resource,
    provider: pulumi.ProviderResource,
    depends_on: Sequence[pulumi.Resource],
) -> k8s.networking.v1.NetworkPolicy:
    return k8s.networking.v1.NetworkPolicy(
        name,
        metadata={"name": policy_name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        spec=spec,
        opts=child_opts(parent, provider, depends_on=depends_on),
    )


def deny_ingress(
    name: str,
    namespace: pulumi.Input[str],
    parent: pulumi.Resource,
    provider: pulumi.ProviderResource,
    *,
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.networking.v1.NetworkPolicy:
    """`default-deny-ingress`: every pod of the namespace refuses connections no other policy allows."""
    spec = {"podSelector": {}, "policyTypes": ["Ingress"]}
    return _policy(name, "default-deny-ingress", namespace, spec, parent, provider, depends_on)


def allow_ingress(
    name: str,
    namespace: pulumi.Input[str],
    *,
    policy_name: str,
    pods: Mapping[str, str],
    sources: Sequence[Peer],
    ports: Sequence[PortRef],
    parent: pulumi.Resource,
    provider: pulumi.ProviderResource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.networking.v1.NetworkPolicy:
    """`policy_name`: the pods labelled `pods` accept TCP `ports` from `sources`, nothing more."""
    if not pods:
        raise ValueError(f"allow_ingress({policy_name!r}): pods must select something (deny_ingress covers all)")
    spec = {
        "podSelector": _selector(pods),
        "policyTypes": ["Ingress"],
        "ingress": [_rule("from", sources, ports)],
    }
    return _policy(name, policy_name, namespace, spec, parent, provider, depends_on)


def allow_proxy_ingress(
    name: str,
    namespace: pulumi.Input[str],
    proxy: ProxyTraffic,
    *,
    parent: pulumi.Resource,
    provider: pulumi.ProviderResource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> Optional[k8s.networking.v1.NetworkPolicy]:
    """`mesh-proxy`: every pod of a meshed namespace accepts its proxy's ports (None without a proxy)."""
    if not proxy.ingress:
        return None
    spec = {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [_rule("from", [peer], ports) for peer, ports in proxy.ingress],
    }
    return _policy(name, "mesh-proxy", namespace, spec, parent, provider, depends_on)


def limit_egress(
    name: str,
    namespace: pulumi.Input[str],
    *,
    policy_name: str,
    pods: Mapping[str, str],
    destinations: Sequence[tuple[Peer, Sequence[PortRef]]] = (),
    parent: pulumi.Resource,
    provider: pulumi.ProviderResource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.networking.v1.NetworkPolicy:
    """`policy_name`: the pods labelled `pods` connect only to the cluster's DNS and `destinations`
    (each a peer and its TCP ports). For data stores, which answer and never call out."""
    if not pods:
        raise ValueError(f"limit_egress({policy_name!r}): pods must select something")
    dns = {"to": KUBE_DNS.render(), "ports": _ports([DNS_PORT], "UDP") + _ports([DNS_PORT], "TCP")}
    spec = {
        "podSelector": _selector(pods),
        "policyTypes": ["Egress"],
        "egress": [dns, *(_rule("to", [peer], ports) for peer, ports in destinations)],
    }
    return _policy(name, policy_name, namespace, spec, parent, provider, depends_on)
