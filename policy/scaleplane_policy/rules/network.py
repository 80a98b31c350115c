"""Network exposure: pods outside every NetworkPolicy, and balancers open to the whole internet.

- network-policies (stack): every workload's pods are selected by an ingress NetworkPolicy of
  their own namespace (a default-deny with `podSelector: {}` counts). A pod no policy selects
  accepts connections from anywhere in the cluster.
- open-load-balancers (resource): in production, an internet-facing LoadBalancer Service sets
  spec.loadBalancerSourceRanges. The one entry point meant for the world (the ingress gateway)
  is named in exemptResources. Internet-facing means: the scheme annotation says so (AWS Load
  Balancer Controller or in-tree), or the in-tree AWS controller (no class, no
  aws-load-balancer-type) gets it without an `aws-load-balancer-internal` annotation. The AWS
  Load Balancer Controller's own default is internal; MetalLB's addresses are its pool's, so
  with balancer metallb only an explicit scheme annotation counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..kube import KubeObject, selector_matches
from ..values import get, is_unknown, items

SCHEME = "service.beta.kubernetes.io/aws-load-balancer-scheme"
INTERNAL = "service.beta.kubernetes.io/aws-load-balancer-internal"
LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"
AWS_NLB_CLASS = "service.k8s.aws/nlb"


def _isolates_ingress(policy: KubeObject) -> Any:
    """Whether a NetworkPolicy governs ingress (policyTypes, or its default: always Ingress)."""
    types = get(policy.props, "spec", "policyTypes")
    if is_unknown(types):
        return None
    if types is None:
        return True
    return "Ingress" in items(types)


def check_network_policies(
    objects: Sequence[KubeObject], options: Mapping[str, Any]
) -> Iterator[tuple[KubeObject, str]]:
    """network-policies: every workload's pods sit behind an ingress NetworkPolicy of their namespace."""
    policies = [obj for obj in objects if obj.is_kind("NetworkPolicy") and obj.group == "networking.k8s.io"]
    if any(is_unknown(policy.namespace) for policy in policies):
        return  # a policy's namespace is not known yet: it may be any workload's
    for workload in objects:
        if not workload.is_workload:
            continue
        namespace, labels = workload.namespace, workload.pod_labels
        if is_unknown(namespace) or is_unknown(labels) or workload.pod_template is None:
            continue
        verdicts = []
        for policy in (p for p in policies if p.namespace == namespace):
            governs = _isolates_ingress(policy)
            selects = selector_matches(get(policy.props, "spec", "podSelector"), labels or {})
            verdicts.append(None if governs is None or selects is None else bool(governs and selects))
        if any(verdict is not False for verdict in verdicts):
            continue  # selected, or not known yet
        yield (
            workload,
            f"{workload.describe()}: no NetworkPolicy of namespace {namespace} selects its pods, so they accept "
            "connections from anywhere (add a default-deny ingress policy and allow what they serve)",
        )


def internet_facing(service: KubeObject, balancer: str) -> Any:
    """True/False, or None when an annotation or the class is not known yet."""
    annotations = get(service.props, "metadata", "annotations") or {}
    klass = get(service.props, "spec", "loadBalancerClass")
    if is_unknown(annotations) or is_unknown(klass):
        return None
    scheme = annotations.get(SCHEME)
    if is_unknown(scheme):
        return None
    if scheme is not None:
        return scheme == "internet-facing"
    if balancer == "metallb":
        return False
    controller_served = klass == AWS_NLB_CLASS or annotations.get(LB_TYPE) in ("external", "nlb-ip")
    if controller_served or klass is not None:
        return False  # the AWS Load Balancer Controller defaults to internal; another class is not AWS's
    return str(annotations.get(INTERNAL, "")).lower() not in ("true", "0.0.0.0/0")


def check_open_load_balancers(obj: KubeObject, options: Mapping[str, Any]) -> Iterator[str]:
    """open-load-balancers: production balancers open to the internet name their clients."""
    if options.get("production") is not True:
        return
    if not obj.is_kind("Service") or obj.group != "core" or get(obj.props, "spec", "type") != "LoadBalancer":
        return
    ranges = get(obj.props, "spec", "loadBalancerSourceRanges")
    if is_unknown(ranges) or items(ranges):
        return
    if internet_facing(obj, options.get("balancer") or "cloud") is True:
        yield (
            f"{obj.describe()} is an internet-facing balancer without loadBalancerSourceRanges: in production only "
            "the ingress gateway is open to the world (list it in exemptResources); make this one internal or "
            "set its source ranges"
        )
