"""hpa-targets (stack policy): each HPA scales a workload of the stack that requests what it needs."""

from __future__ import annotations

import pytest
from policy_support import (
    container,
    container_metric,
    cpu_metric,
    found,
    hpa,
    init_container,
    k8s,
    pod_spec,
    with_,
    workload,
)

from policy.scaleplane_policy import MOCKRUN_UNKNOWN, evaluate


def targets(*resources, config=None):
    return found(resources, "hpa-targets", config)


def test_an_hpa_on_a_deployment_that_requests_cpu_passes():
    assert targets(workload(), hpa()) == []


@pytest.mark.parametrize("kind", ["StatefulSet", "ReplicaSet"])
def test_other_scalable_kinds_are_found(kind):
    assert targets(workload(kind), hpa(kind=kind)) == []


@pytest.mark.parametrize("kind,group", [("DaemonSet", "apps/v1"), ("Job", "batch/v1"), ("Pod", "v1")])
def test_a_workload_without_a_scale_subresource_is_no_target(kind, group):
    assert targets(workload(kind), hpa(kind=kind, api_version=group)) == [
        f"HorizontalPodAutoscaler apps/web scales {kind} apps/web, which has no scale subresource: "
        "the HPA cannot change its size"
    ]


def test_a_target_missing_from_the_stack_is_reported():
    assert targets(workload("Deployment", "api"), hpa(target="web")) == [
        "HorizontalPodAutoscaler apps/web scales Deployment web, which is not in this stack (namespace apps)"
    ]


def test_a_target_of_the_same_name_in_another_namespace_does_not_count():
    assert len(targets(workload(namespace="other"), hpa())) == 1


def test_a_target_of_the_same_name_but_another_kind_does_not_count():
    assert len(targets(workload("StatefulSet"), hpa(kind="Deployment"))) == 1


def test_the_api_group_must_match_too():
    assert len(targets(workload(), hpa(api_version="extensions/v1beta1"))) == 1


def test_no_namespace_means_default_on_both_sides():
    assert targets(workload(namespace=None), hpa(namespace="default")) == []


def test_every_running_container_of_the_target_must_request_cpu():
    pod = pod_spec(container("web"), container("log-shipper", cpu=None))
    [message] = targets(workload(pod=pod), hpa())
    assert message == (
        'HorizontalPodAutoscaler apps/web scales on cpu, but Deployment apps/web container "log-shipper" sets no '
        "cpu request: the HPA cannot compute its utilisation"
    )


def test_a_native_sidecar_counts_but_an_ordinary_init_container_does_not():
    sidecar = init_container("proxy", cpu=None, restartPolicy="Always")
    setup = init_container("setup", cpu=None)
    messages = targets(workload(pod=pod_spec(container(), init=[setup, sidecar])), hpa())
    assert len(messages) == 1 and 'sidecar "proxy"' in messages[0]


def test_an_hpa_without_metrics_scales_on_cpu():
    assert len(targets(workload(pod=pod_spec(container(cpu=None))), hpa(metrics=None))) == 1


def test_cpu_is_needed_even_when_the_hpa_scales_on_memory_alone():
    pod = pod_spec(container(cpu=None))
    assert len(targets(workload(pod=pod), hpa(metrics=[cpu_metric("memory")]))) == 1


def test_memory_is_needed_when_the_hpa_scales_on_memory():
    pod = pod_spec(container("web", memory=None, memory_limit=None))
    assert targets(workload(pod=pod), hpa()) == []
    [message] = targets(workload(pod=pod), hpa(metrics=[cpu_metric(), cpu_metric("memory")]))
    assert "scales on memory" in message and "sets no memory request" in message


def test_memory_is_not_needed_when_the_hpa_compares_raw_memory_usage():
    # An AverageValue target compares usage itself; only a Utilization target divides by the request.
    pod = pod_spec(container("web", memory=None, memory_limit=None))
    raw = {"type": "AverageValue", "averageValue": "200Mi"}
    resource = with_(cpu_metric("memory"), "resource.target", raw)
    assert targets(workload(pod=pod), hpa(metrics=[cpu_metric(), resource])) == []
    per_container = with_(container_metric("web", "memory"), "containerResource.target", raw)
    assert targets(workload(pod=pod), hpa(metrics=[per_container])) == []
    # The named container must still exist.
    missing = with_(container_metric("sidecar", "memory"), "containerResource.target", raw)
    assert len(targets(workload(pod=pod), hpa(metrics=[missing]))) == 1


def test_a_container_resource_metric_needs_its_container():
    assert targets(workload(), hpa(metrics=[cpu_metric(), container_metric("app")])) == []
    [message] = targets(workload(), hpa(metrics=[container_metric("sidecar")]))
    assert 'ContainerResource metric on container "sidecar", which Deployment apps/web does not run' in message


def test_a_container_resource_memory_metric_needs_that_containers_memory_request():
    pod = pod_spec(container("app"), container("cache", memory=None, memory_limit=None))
    assert len(targets(workload(pod=pod), hpa(metrics=[container_metric("cache", "memory")]))) == 1
    assert targets(workload(pod=pod), hpa(metrics=[container_metric("app", "memory")])) == []


def test_an_autoscaling_v1_hpa_is_checked():
    v1 = k8s(
        "HorizontalPodAutoscaler",
        "web",
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 5,
            "targetCPUUtilizationPercentage": 50,
        },
    )
    v1["type"] = "kubernetes:autoscaling/v1:HorizontalPodAutoscaler"
    assert targets(workload(), v1) == []
    assert len(targets(workload(pod=pod_spec(container(cpu=None))), v1)) == 1


def test_an_unknown_target_name_is_not_guessed_at():
    assert targets(hpa(target=MOCKRUN_UNKNOWN)) == []


def test_a_target_whose_name_is_not_known_yet_is_not_called_missing():
    autonamed = workload()
    autonamed["props"]["metadata"]["name"] = MOCKRUN_UNKNOWN
    assert targets(autonamed, hpa()) == []


def test_the_violation_is_reported_on_the_hpa_at_mandatory_level():
    [violation] = [v for v in evaluate([hpa()]) if v.policy == "hpa-targets"]
    assert violation.enforcement == "mandatory"
    assert violation.urn.endswith("HorizontalPodAutoscaler::web-horizontalpodautoscaler")


def test_an_exempt_hpa_is_skipped():
    config = {"hpa-targets": {"exemptResources": ["apps/web"]}}
    assert targets(hpa(), config=config) == []
    assert targets(hpa(), config={"hpa-targets": {"exemptNamespaces": ["apps"]}}) == []
