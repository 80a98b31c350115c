"""Placement renders the playbook's rules exactly, and refuses rules Kubernetes would reject."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import settings
from components.placement import affinity, node_requirement, pod_spec_fields
from deploy.project import PROJECT_DIR, stack_config
from settings.base import parse
from settings.placement import NodeRequirement, Placement


def test_prod_carries_todo_prods_four_rules_exactly() -> None:
    placement = settings.from_config(stack_config("prod")).todo.placement
    assert affinity(placement) == {
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
    assert "nodeSelector" not in pod_spec_fields(placement)


@pytest.mark.parametrize("stack", ["local", "dev"])
def test_todo_dev_runs_on_development_nodes(stack: str) -> None:
    config = settings.from_config(stack_config(stack))
    assert config.todo.name == "todo-dev"
    assert pod_spec_fields(config.todo.placement) == {"nodeSelector": {"environment": "development"}}


def test_empty_placement_sets_nothing() -> None:
    assert pod_spec_fields(Placement()) == {}
    assert affinity(Placement()) is None


def test_tolerations_and_priority_render() -> None:
    placement = parse(
        Placement,
        {
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
            "priorityClass": {"name": "todo-critical", "value": 100000},
        },
    )
    assert pod_spec_fields(placement) == {
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
        requirement = parse(NodeRequirement, {"key": "environment", "operator": operator, "values": values})
        rendered = node_requirement(requirement)
        assert rendered["operator"] == operator
        assert rendered.get("values", []) == values
    else:
        with pytest.raises(ValidationError):
            parse(NodeRequirement, {"key": "environment", "operator": operator, "values": values})


def test_weight_out_of_range_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse(Placement, {"preferredNodeAffinity": [{"weight": 101, "match": [{"key": "a", "operator": "Exists"}]}]})


def test_settings_import_nothing_from_components() -> None:
    """Layers point one way: components use settings' value types, never the reverse."""
    offenders = []
    for path in sorted((PROJECT_DIR / "settings").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "components"]
    assert offenders == []
