"""production-availability (stack policy): replicas and disruption budgets in production."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_support import found, hpa, pdb, workload

from policy.scaleplane_policy.kube import selector_matches


def availability(*resources, production=True, config=None):
    return found(resources, "production-availability", config, production=production)


def test_nothing_is_asked_outside_production():
    assert availability(workload(replicas=1), production=False) == []


def test_a_replicated_workload_with_a_budget_passes():
    assert availability(workload(replicas=3), pdb()) == []


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
def test_one_replica_is_too_few(kind):
    assert availability(workload(kind, replicas=1), pdb()) == [
        f"{kind} apps/web runs 1 replica(s) (replicas); production needs at least 2"
    ]


def test_unset_replicas_means_one():
    assert len(availability(workload(), pdb())) == 1


def test_an_hpa_owns_the_replica_count():
    assert availability(workload(), hpa(min_replicas=2), pdb()) == []
    [message] = availability(workload(replicas=3), hpa(min_replicas=1), pdb())
    assert "(HorizontalPodAutoscaler apps/web minReplicas)" in message


def test_the_minimum_is_configurable():
    config = {"production-availability": {"minReplicas": 3}}
    assert len(availability(workload(replicas=2), pdb(), config=config)) == 1


def test_a_workload_without_a_budget_is_reported():
    assert availability(workload(replicas=2)) == ["Deployment apps/web has no PodDisruptionBudget selecting its pods"]


def test_a_budget_in_another_namespace_or_for_other_pods_does_not_count():
    assert len(availability(workload(replicas=2), pdb(namespace="other"))) == 1
    assert len(availability(workload(replicas=2), pdb(selector={"matchLabels": {"app": "api"}}))) == 1


def test_a_budget_may_select_with_expressions():
    selector = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}
    assert availability(workload(replicas=2), pdb(selector=selector)) == []


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"maxUnavailable": 0}, "maxUnavailable 0"),
        ({"minAvailable": "100%"}, "minAvailable 100%"),
        ({"minAvailable": 3}, "minAvailable 3 with 3 replicas"),
    ],
)
def test_a_budget_that_allows_no_disruption_is_reported(spec, reason):
    [message] = availability(workload(replicas=3), pdb(**spec))
    assert reason in message and "nodes cannot drain" in message


def test_daemonsets_and_jobs_are_left_alone():
    assert availability(workload("DaemonSet"), workload("Job", "batch")) == []


def test_budgets_can_be_made_optional():
    config = {"production-availability": {"requireDisruptionBudget": False}}
    assert availability(workload(replicas=2), config=config) == []


def test_production_can_come_from_the_policy_config():
    config = {"production-availability": {"production": True}}
    assert len(availability(workload(replicas=1), pdb(), production=False, config=config)) == 1


def test_the_policy_configs_production_flag_wins_over_the_stacks_as_in_a_preview():
    config = {"production-availability": {"production": False}}
    assert availability(workload(replicas=1), pdb(), production=True, config=config) == []


labels = st.dictionaries(st.sampled_from(["app", "tier", "env", "team"]), st.sampled_from(["a", "b", "c"]), max_size=4)


@given(labels, labels)
def test_match_labels_select_exactly_the_supersets(selector, pod_labels):
    expected = all(pod_labels.get(k) == v for k, v in selector.items())
    assert selector_matches({"matchLabels": selector}, pod_labels) is expected


@given(labels, st.sampled_from(["app", "tier"]), st.lists(st.sampled_from(["a", "b", "c"]), max_size=3))
def test_match_expressions_follow_their_operators(pod_labels, key, values):
    def match(operator):
        return selector_matches(
            {"matchExpressions": [{"key": key, "operator": operator, "values": values}]}, pod_labels
        )

    assert match("In") is (key in pod_labels and pod_labels[key] in values)
    assert match("NotIn") is not (key in pod_labels and pod_labels[key] in values)
    assert match("Exists") is (key in pod_labels)
    assert match("DoesNotExist") is (key not in pod_labels)


def test_an_empty_selector_selects_everything_and_a_null_one_nothing():
    assert selector_matches({}, {"app": "x"}) is True
    assert selector_matches(None, {"app": "x"}) is False
