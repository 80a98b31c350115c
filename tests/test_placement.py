"""Placement renders the playbook's rules exactly, and refuses rules Kubernetes would reject."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import settings
from components.placement import NodeRequirement, Placement
from deploy.project import stack_config
from settings.base import parse


def test_prod_carries_todo_prods_four_rules_exactly() -> None:
    placement = settings.from_config(stack_config("prod")).todo.placement
    assert placement.affinity() == {
        "nodeAffinity": {
            # a) MUST run on nodes labelled environment=production
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "environment", "operator": "In", "values": ["production"]}]}
                ]
            },
            # b) SHOULD run in us-east-1a or us-east-1b
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [
                            {
                                "key": "topology.kubernetes.io/zone",
                                "operator": "In",
                                "values": ["us-east-1a", "us-east-1b"],
                            }
                        ]
                    },
                }
            ],
        },
        # c) MUST run in the same zone as pods labelled app=mongodb
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "mongodb"}}, "topologyKey": "topology.kubernetes.io/zone"}
            ]
        },
        # d) SHOULD NOT run in a zone where pods labelled app=todo-dev run
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "todo-dev"}},
                        "topologyKey": "topology.kubernetes.io/zone",
                    },
                }
            ]
        },
    }
    assert "nodeSelector" not in placement.pod_spec_fields()


@pytest.mark.parametrize("stack", ["local", "dev"])
def test_todo_dev_runs_on_development_nodes(stack: str) -> None:
    config = settings.from_config(stack_config(stack))
    assert config.todo.name == "todo-dev"
    assert config.todo.placement.pod_spec_fields() == {"nodeSelector": {"environment": "development"}}


def test_empty_placement_sets_nothing() -> None:
    assert Placement().pod_spec_fields() == {}
    assert Placement().affinity() is None


def test_tolerations_and_priority_render() -> None:
    placement = parse(
        Placement,
        {
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
            "priorityClass": {"name": "todo-critical", "value": 100000},
        },
    )
    assert placement.pod_spec_fields() == {
        "tolerations": [{"operator": "Equal", "key": "dedicated", "value": "db", "effect": "NoSchedule"}],
        "priorityClassName": "todo-critical",
    }


OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]


@given(
    operator=st.sampled_from(OPERATORS),
    values=st.lists(st.sampled_from(["1", "20", "a", "production", "us-east-1a"]), max_size=3),
)
def test_node_requirement_accepts_exactly_what_kubernetes_accepts(operator: str, values: list[str]) -> None:
    """In/NotIn need values; Exists/DoesNotExist take none; Gt/Lt take exactly one integer."""
    if operator in ("In", "NotIn"):
        valid = len(values) > 0
    elif operator in ("Exists", "DoesNotExist"):
        valid = len(values) == 0
    else:
        valid = len(values) == 1 and values[0].isdigit()
    if valid:
        rendered = parse(NodeRequirement, {"key": "environment", "operator": operator, "values": values}).render()
        assert rendered["operator"] == operator
        assert rendered.get("values", []) == values
    else:
        with pytest.raises(ValidationError):
            parse(NodeRequirement, {"key": "environment", "operator": operator, "values": values})


def test_weight_out_of_range_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse(Placement, {"preferredNodeAffinity": [{"weight": 101, "match": [{"key": "a", "operator": "Exists"}]}]})
