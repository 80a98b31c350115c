"""The shared security builders: Pod Security labels on namespaces, and the NetworkPolicy builders."""

from __future__ import annotations

import pulumi
import pytest

from components import network
from components.kube import namespace, pod_security_labels
from components.network import API_SERVER, Peer
from tests.support import objects, one, run_component


class _Parent(pulumi.ComponentResource):
    def __init__(self) -> None:
        super().__init__("scaleplane:test:Parent", "parent")


def test_pod_security_labels_enforce_audit_and_warn_one_level() -> None:
    assert pod_security_labels("baseline") == {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/audit": "baseline",
        "pod-security.kubernetes.io/warn": "baseline",
    }
    with pytest.raises(ValueError, match="must be one of privileged, baseline, restricted"):
        pod_security_labels("strict")  # type: ignore[arg-type]


def test_a_namespace_cannot_be_created_without_a_level() -> None:
    with pytest.raises(TypeError, match="pod_security"):
        run_component(lambda provider: namespace("ns", "demo", _Parent(), provider))  # type: ignore[call-arg]


def test_a_namespace_carries_its_level_and_refuses_a_level_in_labels() -> None:
    result = run_component(
        lambda provider: namespace("ns", "demo", _Parent(), provider, pod_security="restricted", labels={"a": "b"})
    )
    labels = one(result, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["a"] == "b"
    with pytest.raises(ValueError, match="pod-security.kubernetes.io/enforce are set by pod_security="):
        run_component(
            lambda provider: namespace(
                "ns",
                "demo",
                _Parent(),
                provider,
                pod_security="restricted",
                labels={"pod-security.kubernetes.io/enforce": "privileged"},
            )
        )


def test_peers_render_selectors_blocks_or_nothing() -> None:
    assert Peer.pods({"app": "web"}).render() == [{"podSelector": {"matchLabels": {"app": "web"}}}]
    assert Peer.pods({"app": "gw"}, namespace="ingress").render() == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}},
            "podSelector": {"matchLabels": {"app": "gw"}},
        }
    ]
    assert Peer.namespace_of("ingress").render() == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
    ]
    assert Peer.addresses("10.0.0.0/8").render() == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]
    assert API_SERVER.render() == []
    with pytest.raises(ValueError, match="exactly one"):
        Peer(selector={"app": "x"}, cidrs=("10.0.0.0/8",))
    with pytest.raises(ValueError, match="must not be empty"):
        Peer.pods({})


def _policies() -> dict[str, dict]:
    def build(provider):
        parent = _Parent()
        network.deny_ingress("deny", "todo", parent, provider)
        network.allow_ingress(
            "web-to-db",
            "todo",
            policy_name="mongodb-from-web",
            pods={"app": "mongodb"},
            sources=[Peer.pods({"app": "todo"})],
            ports=[27017],
            parent=parent,
            provider=provider,
        )
        network.allow_ingress(
            "webhook",
            "todo",
            policy_name="webhook-from-api-server",
            pods={"app": "hook"},
            sources=[API_SERVER],
            ports=[9443],
            parent=parent,
            provider=provider,
        )
        network.limit_egress(
            "db-egress", "todo", policy_name="mongodb-egress", pods={"app": "mongodb"}, parent=parent, provider=provider
        )

    result = run_component(build)
    return {p["metadata"]["name"]: p["spec"] for p in objects(result, "NetworkPolicy")}


def test_deny_allow_and_egress_policies() -> None:
    policies = _policies()
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert policies["mongodb-from-web"] == {
        "podSelector": {"matchLabels": {"app": "mongodb"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"ports": [{"port": 27017, "protocol": "TCP"}], "from": [{"podSelector": {"matchLabels": {"app": "todo"}}}]}
        ],
    }
    # The API server is outside the pod network: the rule has no `from`, only the port.
    assert policies["webhook-from-api-server"]["ingress"] == [{"ports": [{"port": 9443, "protocol": "TCP"}]}]
    egress = policies["mongodb-egress"]
    assert egress["policyTypes"] == ["Egress"]
    assert egress["egress"] == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        }
    ]


def test_rules_need_ports_peers_and_a_selection() -> None:
    with pytest.raises(ValueError, match="at least one port"):
        network._rule("from", [API_SERVER], [])
    with pytest.raises(ValueError, match="at least one Peer"):
        network._rule("from", [], [80])
    with pytest.raises(ValueError, match="within 1..65535"):
        network._rule("from", [API_SERVER], [70000])
    with pytest.raises(ValueError, match="pods must select something"):
        run_component(
            lambda provider: network.allow_ingress(
                "x",
                "todo",
                policy_name="x",
                pods={},
                sources=[API_SERVER],
                ports=[80],
                parent=_Parent(),
                provider=provider,
            )
        )
