"""cpu-requests and memory-requests-limits, and the quantity parser they rest on."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_support import container, found, init_container, pod_spec, workload

from policy.scaleplane_policy import MOCKRUN_UNKNOWN, UNKNOWN
from policy.scaleplane_policy.values import parse_quantity

ALL_WORKLOADS = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Pod", "Job",
                 "CronJob"]


def cpu(*resources, config=None):
    return found(resources, "cpu-requests", config)


def memory(*resources, config=None):
    return found(resources, "memory-requests-limits", config)


@pytest.mark.parametrize("kind", ALL_WORKLOADS)
def test_every_workload_kind_must_request_cpu(kind):
    assert cpu(workload(kind)) == []
    messages = cpu(workload(kind, pod=pod_spec(container("web", cpu=None))))
    assert len(messages) == 1 and 'container "web" sets no cpu request' in messages[0]


def test_a_cronjob_is_judged_by_its_job_template():
    job = workload("CronJob", pod=pod_spec(container("tick", cpu=None)))
    assert "jobTemplate" in job["props"]["spec"]
    assert cpu(job) == ['CronJob apps/web: container "tick" sets no cpu request']


def test_init_containers_must_request_cpu_too():
    pod = pod_spec(container(), init=[init_container("migrate", cpu=None)])
    assert cpu(workload(pod=pod)) == ['Deployment apps/web: init container "migrate" sets no cpu request']


def test_ephemeral_containers_are_not_asked_for_requests():
    debug = {"name": "debugger", "image": "busybox:1.37.0"}
    assert cpu(workload(pod=pod_spec(container(), ephemeral=[debug]))) == []
    assert memory(workload(pod=pod_spec(container(), ephemeral=[debug]))) == []


def test_only_the_container_without_a_request_is_reported():
    pod = pod_spec(container("a"), container("b", cpu=None), container("c"))
    assert cpu(workload(pod=pod)) == ['Deployment apps/web: container "b" sets no cpu request']


def test_a_cpu_limit_alone_counts_since_kubernetes_defaults_the_request_to_it():
    limited = container("web", cpu=None)
    limited["resources"]["limits"]["cpu"] = "500m"
    assert cpu(workload(pod=pod_spec(limited))) == []
    strict = {"cpu-requests": {"acceptLimitAsRequest": False}}
    assert cpu(workload(pod=pod_spec(limited)), config=strict) == [
        'Deployment apps/web: container "web" sets no cpu request (a limit alone does not count here)'
    ]


@pytest.mark.parametrize("zero", ["0", "0m", 0, "0.0"])
def test_a_zero_request_is_no_request(zero):
    [message] = cpu(workload(pod=pod_spec(container(cpu=zero))))
    assert "which is no request" in message


def test_a_malformed_request_is_reported():
    [message] = cpu(workload(pod=pod_spec(container(cpu="half a core"))))
    assert "resources.requests.cpu is invalid" in message


@pytest.mark.parametrize("value", [0.5, 1, "1", "250m", "1.5"])
def test_numbers_and_strings_are_both_quantities(value):
    assert cpu(workload(pod=pod_spec(container(cpu=value)))) == []


def test_resources_set_to_null_are_no_requests():
    web = container("web")
    web["resources"] = None
    assert cpu(workload(pod=pod_spec(web))) == ['Deployment apps/web: container "web" sets no cpu request']


@pytest.mark.parametrize("unknown", [UNKNOWN, MOCKRUN_UNKNOWN])
def test_an_unknown_request_is_not_guessed_at(unknown):
    assert cpu(workload(pod=pod_spec(container(cpu=unknown)))) == []
    web = container("web")
    web["resources"] = unknown
    assert cpu(workload(pod=pod_spec(web))) == []


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["container", "init", "ephemeral"])), min_size=1,
                max_size=8))
def test_exactly_the_running_containers_without_cpu_are_reported(spec):
    containers, init, ephemeral, expected = [], [], [], set()
    for i, (has_cpu, where) in enumerate(spec):
        name = f"c{i}"
        if where == "ephemeral":
            ephemeral.append({"name": name, "image": "busybox:1.37.0"})
            continue
        built = (container if where == "container" else init_container)(name, cpu="100m" if has_cpu else None)
        (containers if where == "container" else init).append(built)
        if not has_cpu:
            expected.add(name)
    containers = containers or [container("main")]
    reported = {m.split('"')[1] for m in cpu(workload(pod=pod_spec(*containers, init=init, ephemeral=ephemeral)))}
    assert reported == expected


def test_memory_request_and_limit_are_both_asked_for():
    assert memory(workload()) == []
    assert memory(workload(pod=pod_spec(container("web", memory=None, memory_limit=None)))) == [
        'Deployment apps/web: container "web" sets no memory request',
        'Deployment apps/web: container "web" sets no memory limit',
    ]
    assert memory(workload(pod=pod_spec(container("web", memory_limit=None)))) == [
        'Deployment apps/web: container "web" sets no memory limit'
    ]


def test_a_memory_limit_alone_is_also_the_request():
    assert memory(workload(pod=pod_spec(container("web", memory=None, memory_limit="256Mi")))) == []


def test_the_memory_limit_can_be_made_optional():
    pod = pod_spec(container("web", memory_limit=None))
    assert memory(workload(pod=pod), config={"memory-requests-limits": {"requireLimit": False}}) == []


def test_a_memory_limit_below_the_request_is_reported():
    [message] = memory(workload(pod=pod_spec(container("web", memory="1Gi", memory_limit="512Mi"))))
    assert "limits memory to 512Mi but requests more" in message


def test_memory_applies_to_init_containers_and_jobs():
    job = workload("Job", pod=pod_spec(container(), init=[init_container("fetch", memory=None, memory_limit=None)]))
    assert memory(job) == [
        'Job apps/web: init container "fetch" sets no memory request',
        'Job apps/web: init container "fetch" sets no memory limit',
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("250m", "0.25"), ("1", "1"), ("1.5", "1.5"), ("128Mi", str(128 * 2**20)), ("1Gi", str(2**30)),
     ("2k", "2000"), ("1e3", "1000"), ("0.5Ki", "512"), (".5", "0.5")],
)
def test_quantities_parse_as_kubernetes_reads_them(text, value):
    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "m", "1.2.3", "12 Mi", "1mi", "one", "1Gb", True, None, [1]])
def test_malformed_quantities_are_refused(text):
    with pytest.raises(ValueError):
        parse_quantity(text)


@given(st.integers(min_value=0, max_value=10**9))
def test_millicores_are_thousandths(n):
    assert parse_quantity(f"{n}m") * 1000 == n
    assert parse_quantity(f"{n}Mi") == n * 2**20
