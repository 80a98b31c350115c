"""probe-timings and helm-chart-versions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_support import container, found, helm, pod_spec, probe, workload

from policy.scaleplane_policy import MOCKRUN_UNKNOWN


def timings(*resources, config=None):
    return found(resources, "probe-timings", config)


def test_default_timings_pass():
    assert timings(workload()) == []


def test_the_playbooks_minio_liveness_probe_passes():
    minio = probe("httpGet", initialDelaySeconds=120, periodSeconds=20)
    minio["httpGet"] = {"path": "/minio/health/live", "port": 9000}
    assert timings(workload("StatefulSet", pod=pod_spec(container(liveness=minio, ports=[])))) == []


def test_a_timeout_as_long_as_the_period_is_reported():
    [message] = timings(workload(pod=pod_spec(container(readiness=probe(timeoutSeconds=10)))))
    assert "readinessProbe: timeoutSeconds (10) must be shorter than periodSeconds (10)" in message


def test_zero_means_the_kubernetes_default():
    assert timings(workload(pod=pod_spec(container(readiness=probe(timeoutSeconds=0, periodSeconds=0))))) == []


def test_liveness_success_threshold_must_be_one():
    [message] = timings(workload(pod=pod_spec(container(liveness=probe(successThreshold=2)))))
    assert "successThreshold must be 1 for a livenessProbe" in message


def test_a_hair_trigger_liveness_probe_is_reported():
    quick = probe(periodSeconds=2, failureThreshold=1)
    messages = timings(workload(pod=pod_spec(container(liveness=quick))))
    assert any("after 2s of failures" in m for m in messages)
    config = {"probe-timings": {"minLivenessFailureSeconds": 2}}
    assert not any("after 2s of failures" in m for m in timings(workload(pod=pod_spec(container(liveness=quick))),
                                                                  config=config))


def test_liveness_must_not_give_up_before_readiness():
    live, ready = probe(periodSeconds=10, failureThreshold=2), probe(periodSeconds=10, failureThreshold=6)
    [message] = timings(workload(pod=pod_spec(container(liveness=live, readiness=ready))))
    assert "restarted before it is taken out of service" in message


@given(st.integers(1, 60), st.integers(1, 60), st.integers(1, 10))
def test_timeouts_are_reported_exactly_when_not_below_the_period(timeout, period, failures):
    ready = probe(timeoutSeconds=timeout, periodSeconds=period, failureThreshold=failures)
    live = probe(periodSeconds=60, failureThreshold=10)
    messages = timings(workload(pod=pod_spec(container(liveness=live, readiness=ready))))
    assert any("must be shorter than periodSeconds" in m for m in messages) is (timeout >= period)


def charts(*resources, config=None):
    return found(resources, "helm-chart-versions", config)


@pytest.mark.parametrize("kind", ["Release", "Chart"])
def test_a_pinned_chart_passes(kind):
    assert charts(helm(kind, "metrics-server", "metrics-server", "3.13.1")) == []
    assert charts(helm(kind, "linkerd", "linkerd-control-plane", "2026.8.3")) == []
    assert charts(helm(kind, "x", "oci://registry.example.com/charts/x", "v1.0.0-rc.1+build.5")) == []


@pytest.mark.parametrize("kind", ["Release", "Chart"])
@pytest.mark.parametrize("version", [None, "", "^3.13", "~3.13.0", ">=1.0.0", "*", "3.13", "latest", "3.x"])
def test_an_unpinned_chart_is_reported(kind, version):
    [message] = charts(helm(kind, "ms", "metrics-server", version))
    assert f'Helm {kind} ms (chart "metrics-server")' in message


def test_a_chart_without_a_version_key_is_reported():
    assert len(charts(helm("Release", "ms", "metrics-server"))) == 1


def test_local_charts_need_no_version():
    assert charts(helm("Chart", "app", "./charts/app")) == []
    strict = {"helm-chart-versions": {"allowLocalCharts": False}}
    assert len(charts(helm("Chart", "app", "./charts/app"), config=strict)) == 1


def test_a_chart_whose_inputs_policies_cannot_see_is_not_judged():
    # A v4 Chart in a real preview: the provider registers the component without its inputs.
    assert charts({"type": "kubernetes:helm.sh/v4:Chart", "name": "ms", "urn": "urn:ms", "props": {}}) == []
    assert charts(helm("Release", "ms", "metrics-server", MOCKRUN_UNKNOWN)) == []
