"""Traffic settings: MetalLB address ranges, sections matching the balancer/mesh choice, certificates."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import settings
from deploy.project import stack_config
from settings.traffic import CertificateSettings, LinkerdSettings, MetalLBSettings, address_bounds

BASE = {
    "scaleplane:environment": "test",
    "scaleplane:existingCluster": json.dumps({"context": "kind-test"}),
}


def load(**extra: object) -> settings.Settings:
    raw = dict(BASE)
    for key, value in extra.items():
        raw[f"scaleplane:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return settings.from_config(raw)


def problems(**extra: object) -> str:
    with pytest.raises(settings.SettingsError) as error:
        load(**extra)
    return str(error.value)


@pytest.mark.parametrize(
    "text, first, last",
    [
        ("192.168.1.240/28", "192.168.1.240", "192.168.1.255"),
        ("172.18.255.200-172.18.255.250", "172.18.255.200", "172.18.255.250"),
        ("10.0.0.7-10.0.0.7", "10.0.0.7", "10.0.0.7"),
        ("fd00:10::/120", "fd00:10::", "fd00:10::ff"),
        ("fd00::1-fd00::9", "fd00::1", "fd00::9"),
    ],
)
def test_address_ranges_are_cidrs_or_first_last(text: str, first: str, last: str) -> None:
    assert address_bounds(text) == (ipaddress.ip_address(first), ipaddress.ip_address(last))


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("10.0.0.9-10.0.0.1", "starts after it ends"),
        ("10.0.0.1-fd00::1", "mixes IPv4 and IPv6"),
        ("10.0.0.300-10.0.0.301", "not a valid address range"),
        ("10.0.0.1/24", "neither a CIDR"),  # host bits set: a typo more often than not
        ("metallb", "neither a CIDR"),
    ],
)
def test_malformed_ranges_are_refused_naming_the_key(text: str, complaint: str) -> None:
    message = problems(balancer="metallb", metallb={"addresses": [text]})
    assert "scaleplane:metallb.addresses[0]" in message
    assert complaint in message


def test_overlapping_ranges_are_refused() -> None:
    message = problems(balancer="metallb", metallb={"addresses": ["10.0.0.0/28", "10.0.0.10-10.0.0.20"]})
    assert "overlap" in message and "10.0.0.0/28" in message


def test_ranges_of_different_families_never_overlap() -> None:
    section = load(balancer="metallb", metallb={"addresses": ["10.0.0.0/28", "fd00::/124"]}).metallb
    assert section is not None and section.addresses == ("10.0.0.0/28", "fd00::/124")


@given(st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 64)), min_size=1, max_size=6))
def test_accepted_ranges_are_disjoint(spans: list[tuple[int, int]]) -> None:
    base = int(ipaddress.ip_address("10.20.0.0"))
    texts = [
        f"{ipaddress.ip_address(base + start)}-{ipaddress.ip_address(base + start + length)}" for start, length in spans
    ]
    intervals = sorted((base + start, base + start + length) for start, length in spans)
    disjoint = all(a[1] < b[0] for a, b in zip(intervals, intervals[1:], strict=False))
    try:
        MetalLBSettings(addresses=tuple(texts))
    except ValueError as error:
        assert not disjoint, f"disjoint ranges refused: {error}"
    else:
        assert disjoint, f"overlapping ranges accepted: {texts}"


def test_metallb_section_is_required_exactly_when_metallb_balances() -> None:
    assert "balancer is 'metallb' but scaleplane:metallb is not set" in problems(balancer="metallb")
    assert "scaleplane:metallb is set but balancer is 'cloud'" in problems(metallb={"addresses": ["10.0.0.0/30"]})


def test_nlb_scheme_is_required_and_stated() -> None:
    assert "balancer is 'aws-nlb' but scaleplane:nlb is not set" in problems(balancer="aws-nlb")
    assert "scaleplane:nlb.scheme: required key is missing" in problems(balancer="aws-nlb", nlb={})
    assert "scaleplane:nlb.scheme" in problems(balancer="aws-nlb", nlb={"scheme": "public"})
    assert load(balancer="aws-nlb", nlb={"scheme": "internal"}).nlb.scheme == "internal"  # type: ignore[union-attr]


def test_mesh_sections_belong_to_their_mesh() -> None:
    assert "scaleplane:istio is set but mesh is 'linkerd'" in problems(mesh="linkerd", istio={})
    assert "scaleplane:linkerd is set but mesh is 'none'" in problems(linkerd={})
    # Optional for the chosen mesh: defaults apply.
    assert load(mesh="istio").istio_settings.version == "1.30.3"
    assert load(mesh="linkerd").linkerd_settings.chart_version == "2026.8.3"


def test_unknown_traffic_keys_are_refused_with_the_allowed_ones() -> None:
    message = problems(mesh="istio", istio={"gatewayReplicas": 3})
    assert "scaleplane:istio.gatewayReplicas: unknown key" in message
    assert "gateway" in message


def test_certificate_renewal_must_fall_inside_validity() -> None:
    with pytest.raises(ValueError, match="earlyRenewalHours"):
        CertificateSettings(validity_hours=100, early_renewal_hours=100)
    with pytest.raises(ValueError, match="must not exceed trustAnchor.validityHours"):
        LinkerdSettings(
            trust_anchor=CertificateSettings(validity_hours=1000, early_renewal_hours=10),
            issuer=CertificateSettings(validity_hours=2000, early_renewal_hours=10),
        )


def test_istio_gateway_replica_bounds_are_ordered() -> None:
    assert "minReplicas (4) must not exceed maxReplicas (2)" in problems(
        mesh="istio", istio={"gateway": {"minReplicas": 4, "maxReplicas": 2}}
    )


@pytest.mark.parametrize(
    "stack, balancer, mesh",
    [
        ("local", "metallb", "linkerd"),
        ("dev", "cloud", "linkerd"),
        ("staging", "aws-nlb", "istio"),
        ("prod", "aws-nlb", "istio"),
    ],
)
def test_stacks_choose_their_traffic_shape(stack: str, balancer: str, mesh: str) -> None:
    config = settings.from_config(stack_config(stack))
    assert (config.balancer, config.mesh) == (balancer, mesh)


def test_istio_version_is_a_git_tag_without_v() -> None:
    """The version names the istio/istio tag the CRDs come from: Istio's tags carry no "v"."""
    assert "scaleplane:istio.version" in problems(mesh="istio", istio={"version": "v1.30.3"})
    assert load(mesh="istio", istio={"version": "1.29.0"}).istio_settings.version == "1.29.0"


@pytest.mark.parametrize("good", ["metallb.io/metallb", "internal-vip", "example.com/pool_a.1"])
def test_load_balancer_class_is_a_qualified_name(good: str) -> None:
    section = {"addresses": ["10.0.0.0/28"], "loadBalancerClass": good}
    assert load(balancer="metallb", metallb=section).metallb.load_balancer_class == good  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["metallb io", "/metallb", "Example.com/x", "metallb.io/", "a/b/c"])
def test_load_balancer_class_that_kubernetes_refuses_is_refused(bad: str) -> None:
    section = {"addresses": ["10.0.0.0/28"], "loadBalancerClass": bad}
    assert "scaleplane:metallb.loadBalancerClass" in problems(balancer="metallb", metallb=section)


def test_mesh_namespaces_must_not_collide() -> None:
    message = problems(mesh="istio", istio={"gateway": {"namespace": "istio-system"}})
    assert "scaleplane:istio" in message and "gateway.namespace must differ from namespace" in message
    message = problems(mesh="linkerd", linkerd={"traefik": {"namespace": "linkerd-viz"}})
    assert "traefik.namespace 'linkerd-viz' is already the vizNamespace" in message
    message = problems(mesh="linkerd", linkerd={"emojivoto": {"enabled": True, "namespace": "linkerd"}})
    assert "emojivoto.namespace 'linkerd' is already the namespace" in message
    # A disabled demo's namespace is never created, so it cannot collide.
    assert load(mesh="linkerd", linkerd={"emojivoto": {"namespace": "linkerd"}}).mesh == "linkerd"
    message = problems(mesh="istio", istio={"cniNamespace": "istio-ingress"})
    assert "cniNamespace must differ from gateway.namespace" in message
    message = problems(mesh="linkerd", linkerd={"cniNamespace": "linkerd"})
    assert "cniNamespace 'linkerd' is already the namespace" in message


ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
NLB = {"balancer": "aws-nlb", "nlb": {"scheme": "internet-facing"}, "mesh": "istio"}


def test_gateway_tls_takes_an_acm_certificate_or_a_secret_of_yours() -> None:
    assert load(**NLB, istio={"gateway": {"tls": {"certificateArn": ARN}}}).istio.gateway.tls.certificate_arn == ARN  # type: ignore[union-attr]
    named = load(mesh="istio", istio={"gateway": {"tls": {"credentialName": "shop-tls"}}})
    assert named.istio.gateway.tls.credential_name == "shop-tls"  # type: ignore[union-attr]
    # Neither: the program generates a certificate (no placeholder to fill in).
    assert load(mesh="istio").istio_settings.gateway.tls.certificate_arn is None


@pytest.mark.parametrize(
    "tls, extra, complaint",
    [
        ({"certificateArn": ARN, "credentialName": "x"}, NLB, "not both"),
        ({"certificateArn": "arn:aws:iam::123456789012:role/x"}, NLB, "scaleplane:istio.gateway.tls.certificateArn"),
        ({"credentialName": "Not_A_Name"}, NLB, "scaleplane:istio.gateway.tls.credentialName"),
        ({"certificateArn": ARN}, {"mesh": "istio"}, "certificateArn is an ACM certificate for the AWS NLB"),
    ],
)
def test_bad_gateway_tls_is_refused_naming_the_key(
    tls: dict[str, str], extra: dict[str, object], complaint: str
) -> None:
    assert complaint in problems(**extra, istio={"gateway": {"tls": tls}})
