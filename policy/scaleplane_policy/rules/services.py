"""LoadBalancer Services only where the stack's balancer can serve them.

- metallb: MetalLB serves Services without a loadBalancerClass (unless it was installed with a
  class, which then goes in allowedLoadBalancerClasses).
- aws-nlb: the AWS Load Balancer Controller serves Services of class service.k8s.aws/nlb, or
  those annotated service.beta.kubernetes.io/aws-load-balancer-type: external (or nlb-ip).
  Without either, the in-tree cloud controller would make a Classic ELB instead.
- cloud: the cloud controller's own balancer, which serves Services without a class.
- none: the cluster has no balancer; a LoadBalancer Service would stay <pending> forever.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..kube import KubeObject
from ..values import get, is_unknown

AWS_NLB_CLASS = "service.k8s.aws/nlb"
AWS_LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"
BALANCERS = ("metallb", "aws-nlb", "cloud", "none")
#: The project's default balancer (Pulumi.yaml: scaleplane:balancer).
DEFAULT_BALANCER = "cloud"


def check_load_balancer_services(obj: KubeObject, options: Mapping[str, Any]) -> Iterator[str]:
    """load-balancer-services: a LoadBalancer Service's class fits the stack's balancer."""
    if not obj.is_kind("Service") or obj.group != "core":
        return
    service_type = get(obj.props, "spec", "type")
    if service_type != "LoadBalancer":
        return
    balancer = options.get("balancer") or DEFAULT_BALANCER
    allowed = set(options.get("allowedLoadBalancerClasses", ()))
    klass = get(obj.props, "spec", "loadBalancerClass")
    lb_type = get(obj.props, "metadata", "annotations", AWS_LB_TYPE)
    if is_unknown(klass) or is_unknown(lb_type):
        return
    where = obj.describe()
    if klass is not None and klass in allowed:
        return
    if balancer == "none":
        yield f"{where} is of type LoadBalancer but this stack has no load balancer (balancer: none)"
    elif balancer == "aws-nlb":
        if klass == AWS_NLB_CLASS or (klass is None and lb_type in ("external", "nlb-ip")):
            return
        if klass is None:
            yield (f"{where} sets neither loadBalancerClass {AWS_NLB_CLASS} nor the {AWS_LB_TYPE} annotation: "
                   "the AWS Load Balancer Controller would not serve it")
        else:
            yield f"{where} has loadBalancerClass {klass!r}, which the AWS Load Balancer Controller does not serve"
    elif klass is not None:
        extra = f" or one of {', '.join(sorted(allowed))}" if allowed else ""
        yield f"{where} has loadBalancerClass {klass!r}; with balancer {balancer} it must have none{extra}"
    elif balancer == "metallb" and lb_type is not None:
        yield f"{where} carries the AWS annotation {AWS_LB_TYPE}, but this stack's balancer is MetalLB"
