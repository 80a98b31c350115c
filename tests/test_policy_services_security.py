"""load-balancer-services and container-security."""

from __future__ import annotations

import pytest
from policy_support import container, found, pod_spec, service, workload

from policy.scaleplane_policy import PolicyConfigError, evaluate

NLB = "service.k8s.aws/nlb"
LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"


def balancers(*resources, balancer=None, config=None):
    return found(resources, "load-balancer-services", config, balancer=balancer)


@pytest.mark.parametrize("balancer", ["metallb", "cloud"])
def test_metallb_and_cloud_serve_services_without_a_class(balancer):
    assert balancers(service(), balancer=balancer) == []
    [message] = balancers(service(load_balancer_class=NLB), balancer=balancer)
    assert f"loadBalancerClass '{NLB}'; with balancer {balancer} it must have none" in message


def test_aws_nlb_needs_the_controllers_class_or_annotation():
    assert balancers(service(load_balancer_class=NLB), balancer="aws-nlb") == []
    assert balancers(service(annotations={LB_TYPE: "external"}), balancer="aws-nlb") == []
    [message] = balancers(service(), balancer="aws-nlb")
    assert "the AWS Load Balancer Controller would not serve it" in message
    [message] = balancers(service(load_balancer_class="example.com/other"), balancer="aws-nlb")
    assert "does not serve" in message


def test_no_balancer_allows_no_load_balancer_service():
    [message] = balancers(service(), balancer="none")
    assert "this stack has no load balancer" in message
    assert balancers(service(type_="ClusterIP"), balancer="none") == []


def test_an_aws_annotation_on_metallb_is_reported():
    [message] = balancers(service(annotations={LB_TYPE: "external"}), balancer="metallb")
    assert "MetalLB" in message


def test_extra_classes_can_be_allowed():
    config = {"load-balancer-services": {"allowedLoadBalancerClasses": ["metallb.io/pool-a"]}}
    assert balancers(service(load_balancer_class="metallb.io/pool-a"), balancer="metallb", config=config) == []


def test_the_balancer_comes_from_the_config_when_not_passed():
    config = {"load-balancer-services": {"balancer": "none"}}
    assert len(balancers(service(), config=config)) == 1


def test_the_policy_configs_balancer_wins_over_the_stacks_as_in_a_preview():
    # policy/__main__.py reads scaleplane:balancer only when the policy config leaves it unset;
    # the offline plan must judge the stack the same way.
    config = {"load-balancer-services": {"balancer": "none"}}
    assert len(balancers(service(), balancer="cloud", config=config)) == 1
    assert balancers(service(), balancer="none", config={"load-balancer-services": {"balancer": "cloud"}}) == []


def test_without_any_setting_the_project_default_cloud_applies():
    assert balancers(service()) == []
    assert len(balancers(service(load_balancer_class=NLB))) == 1


def test_an_unknown_balancer_is_refused():
    with pytest.raises(PolicyConfigError, match="balancer: 'f5'"):
        evaluate([service()], balancer="f5")


def security(*resources, config=None):
    return found(resources, "container-security", config)


def test_a_restricted_container_passes():
    assert security(workload()) == []


def test_a_privileged_container_is_reported():
    web = container("web", security={"privileged": True, "runAsNonRoot": True})
    assert security(workload(pod=pod_spec(web))) == ['Deployment apps/web: container "web" is privileged']


def test_running_as_uid_0_is_reported_even_when_the_pod_says_non_root():
    web = container("web", security={"runAsUser": 0})
    [message] = security(workload(pod=pod_spec(web, securityContext={"runAsNonRoot": True})))
    assert "runs as root (runAsUser: 0)" in message


def test_the_pod_security_context_covers_its_containers():
    web = container("web", security=None)
    assert security(workload(pod=pod_spec(web, securityContext={"runAsNonRoot": True}))) == []
    assert security(workload(pod=pod_spec(web, securityContext={"runAsUser": 1000}))) == []


def test_a_container_that_says_nothing_may_run_as_root():
    [message] = security(workload(pod=pod_spec(container("web", security=None))))
    assert "may run as root" in message
    relaxed = {"container-security": {"requireRunAsNonRoot": False}}
    assert security(workload(pod=pod_spec(container("web", security=None))), config=relaxed) == []


def test_init_and_ephemeral_containers_are_checked():
    pod = pod_spec(
        container(),
        init=[container("setup", security={"privileged": True, "runAsNonRoot": True})],
        ephemeral=[{"name": "debug", "image": "busybox:1.37.0", "securityContext": {"runAsUser": 0}}],
    )
    messages = security(workload("Job", pod=pod))
    assert [m.split('"')[1] for m in messages] == ["setup", "debug"]
