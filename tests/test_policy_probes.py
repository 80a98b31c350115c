"""workload-probes: liveness and readiness probes on every long-running container."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_support import (
    MISSING,
    container,
    found,
    init_container,
    k8s,
    pod_spec,
    probe,
    workload,
)

from policy.scaleplane_policy import MOCKRUN_UNKNOWN, UNKNOWN

LONG_RUNNING = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Pod"]


def probes(*resources):
    return found(resources, "workload-probes")


@pytest.mark.parametrize("kind", LONG_RUNNING)
def test_a_compliant_workload_of_every_long_running_kind_passes(kind):
    assert probes(workload(kind)) == []


@pytest.mark.parametrize("kind", LONG_RUNNING)
@pytest.mark.parametrize("field", ["liveness", "readiness"])
def test_a_missing_probe_is_reported_on_every_long_running_kind(kind, field):
    pod = pod_spec(container("web", **{field: MISSING}))
    messages = probes(workload(kind, pod=pod))
    assert len(messages) == 1
    assert f'container "web" has no {field}Probe' in messages[0]
    assert kind in messages[0]


@pytest.mark.parametrize("field", ["liveness", "readiness"])
def test_a_probe_set_to_null_is_no_probe(field):
    messages = probes(workload(pod=pod_spec(container("web", **{field: None}))))
    assert messages == [f'Deployment apps/web: container "web" has no {field}Probe']


@pytest.mark.parametrize("handler", ["httpGet", "tcpSocket", "grpc", "exec"])
def test_every_handler_counts(handler):
    pod = pod_spec(container(liveness=probe(handler), readiness=probe(handler)))
    assert probes(workload(pod=pod)) == []


def test_a_probe_without_a_handler_is_reported():
    pod = pod_spec(container(liveness={"periodSeconds": 10, "httpGet": None}))
    assert probes(workload(pod=pod)) == [
        'Deployment apps/web: container "app" livenessProbe has no handler (one of exec, httpGet, tcpSocket, grpc)'
    ]


def test_a_probe_with_two_handlers_is_reported():
    two = {**probe("httpGet"), **probe("tcpSocket")}
    [message] = probes(workload(pod=pod_spec(container(readiness=two))))
    assert "more than one handler (httpGet, tcpSocket)" in message


def test_an_exec_probe_needs_a_command():
    [message] = probes(workload(pod=pod_spec(container(liveness={"exec": {"command": []}}))))
    assert "livenessProbe.exec.command is empty" in message


def test_a_named_port_probe_passes_when_the_container_declares_the_port():
    named = {"httpGet": {"path": "/ready", "port": "metrics"}}
    pod = pod_spec(container(readiness=named, ports=[{"name": "metrics", "containerPort": 9100}]))
    assert probes(workload(pod=pod)) == []


def test_a_named_port_the_container_does_not_declare_is_reported():
    named = {"tcpSocket": {"port": "admin"}}
    [message] = probes(workload(pod=pod_spec(container(liveness=named))))
    assert 'livenessProbe.tcpSocket.port "admin" names no port of the container (its ports: http)' in message


def test_a_named_port_declared_on_another_container_does_not_count():
    other = container("other", ports=[{"name": "admin", "containerPort": 9000}])
    web = container("web", liveness={"httpGet": {"path": "/", "port": "admin"}}, ports=[])
    [message] = probes(workload(pod=pod_spec(other, web)))
    assert 'container "web"' in message and '"admin" names no port' in message


def test_a_port_number_written_as_a_string_is_reported():
    [message] = probes(workload(pod=pod_spec(container(liveness={"httpGet": {"port": "8080"}}))))
    assert "8080" in message and "number" in message


def test_a_grpc_probe_takes_no_named_port():
    [message] = probes(workload(pod=pod_spec(container(liveness={"grpc": {"port": "http"}}))))
    assert "livenessProbe.grpc.port 'http' must be a port number" in message


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_a_port_outside_the_range_is_reported(port):
    [message] = probes(workload(pod=pod_spec(container(liveness={"tcpSocket": {"port": port}}))))
    assert "is not a port number" in message


def test_only_the_container_that_lacks_a_probe_is_reported():
    pod = pod_spec(container("a"), container("b", readiness=MISSING), container("c"))
    assert probes(workload(pod=pod)) == ['Deployment apps/web: container "b" has no readinessProbe']


def test_init_containers_need_no_probes():
    pod = pod_spec(container(), init=[init_container("migrate"), init_container("wait-for-db")])
    assert probes(workload(pod=pod)) == []


def test_a_native_sidecar_needs_probes_like_any_running_container():
    sidecar = init_container("proxy", restartPolicy="Always")
    messages = probes(workload(pod=pod_spec(container(), init=[sidecar])))
    assert messages == [
        'Deployment apps/web: sidecar "proxy" has no livenessProbe',
        'Deployment apps/web: sidecar "proxy" has no readinessProbe',
    ]


def test_ephemeral_containers_need_no_probes():
    debug = {"name": "debugger", "image": "busybox:1.37.0"}
    assert probes(workload(pod=pod_spec(container(), ephemeral=[debug]))) == []


@pytest.mark.parametrize("kind", ["Job", "CronJob"])
def test_run_to_completion_workloads_need_no_probes(kind):
    pod = pod_spec(container(liveness=MISSING, readiness=MISSING), restartPolicy="Never")
    assert probes(workload(kind, pod=pod)) == []


def test_a_pod_template_without_containers_is_reported():
    assert probes(workload(pod={"containers": []})) == ["Deployment apps/web: the pod template has no containers"]


@pytest.mark.parametrize("unknown", [UNKNOWN, MOCKRUN_UNKNOWN])
def test_unknown_values_are_not_guessed_at(unknown):
    assert probes(workload(pod=pod_spec(container(liveness=unknown)))) == []
    assert probes(workload(pod={"containers": unknown})) == []
    assert probes(workload(pod=unknown)) == []


def test_objects_that_run_no_pods_are_not_judged():
    patch = {"type": "kubernetes:apps/v1:DeploymentPatch", "name": "p", "urn": "urn:p",
             "props": {"spec": {"template": {"spec": {"containers": [{"name": "x"}]}}}}}
    config_map = k8s("Service", "svc", spec={"type": "ClusterIP"})
    assert probes(patch, config_map) == []


def test_a_deployment_from_the_legacy_extensions_group_is_judged():
    legacy = workload(pod=pod_spec(container(liveness=MISSING)))
    legacy["type"] = "kubernetes:extensions/v1beta1:Deployment"
    assert len(probes(legacy)) == 1


probe_states = st.sampled_from(["ok", "missing", "null", "empty"])


@given(st.lists(st.tuples(probe_states, probe_states), min_size=1, max_size=6))
def test_exactly_the_containers_without_working_probes_are_reported(states):
    def make(state):
        return {"ok": probe("tcpSocket"), "missing": MISSING, "null": None, "empty": {}}[state]

    containers = [
        container(f"c{i}", liveness=make(live), readiness=make(ready)) for i, (live, ready) in enumerate(states)
    ]
    messages = probes(workload(pod=pod_spec(*containers)))
    expected = {
        (f"c{i}", field)
        for i, pair in enumerate(states)
        for field, state in zip(("livenessProbe", "readinessProbe"), pair, strict=True)
        if state != "ok"
    }
    reported = {(m.split('"')[1], next(f for f in ("livenessProbe", "readinessProbe") if f in m)) for m in messages}
    assert reported == expected
    assert len(messages) == len(expected)


def test_numbers_carried_as_doubles_are_still_port_numbers():
    # Pulumi's wire format has only doubles: the mock run and the engine both hand over 8080.0.
    pod = pod_spec(container(liveness={"tcpSocket": {"port": 8080.0}}, readiness={"grpc": {"port": 9090.0}}))
    assert probes(workload(pod=pod)) == []
    assert len(probes(workload(pod=pod_spec(container(liveness={"tcpSocket": {"port": 8080.5}}))))) == 1
