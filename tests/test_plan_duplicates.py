"""Two Pulumi resources that write one Kubernetes object (API group, kind, namespace, name) are an
error of the plan naming both, whatever component made them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest
from support import run_component

from deploy import mockrun, plan


def namespace(name: str, provider: k8s.Provider, metadata_name: str) -> k8s.core.v1.Namespace:
    return k8s.core.v1.Namespace(name, metadata={"name": metadata_name}, opts=pulumi.ResourceOptions(provider=provider))


def service(name: str, provider: k8s.Provider, metadata: dict) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        name,
        metadata=metadata,
        spec={"ports": [{"port": 80}], "selector": {"app": "x"}},
        opts=pulumi.ResourceOptions(provider=provider),
    )


def test_two_namespaces_of_one_name_are_refused_naming_both_resources() -> None:
    result = run_component(lambda p: [namespace("todo-namespace", p, "todo"), namespace("minio-namespace", p, "todo")])
    duplicates = plan.duplicate_objects(result)
    assert len(duplicates) == 1
    ((second, (problem,)),) = duplicates.items()
    names = {"todo-namespace", "minio-namespace"}
    assert second.split()[-1] in names and next(iter(names - {second.split()[-1]})) in problem
    assert problem.endswith(": Namespace todo")


def test_services_collide_only_in_one_namespace() -> None:
    result = run_component(
        lambda p: [
            service("todo-mongodb", p, {"name": "mongodb", "namespace": "todo"}),
            service("minio-mongodb", p, {"name": "mongodb", "namespace": "minio"}),
            service("other-mongodb", p, {"name": "mongodb", "namespace": "todo"}),
        ]
    )
    duplicates = plan.duplicate_objects(result)
    # Ordered by URN, so the report is the same on every run: other-mongodb came first.
    assert duplicates == {
        "kubernetes:core/v1:Service todo-mongodb": [
            "the same Kubernetes object as kubernetes:core/v1:Service other-mongodb: Service todo/mongodb"
        ]
    }


def test_one_name_in_other_kinds_groups_or_left_to_pulumi_is_no_collision() -> None:
    def build(p: k8s.Provider) -> list[pulumi.Resource]:
        opts = pulumi.ResourceOptions(provider=p)
        return [
            namespace("a", p, "shared"),
            k8s.core.v1.ConfigMap("b", metadata={"name": "shared", "namespace": "shared"}, opts=opts),
            k8s.apiextensions.CustomResource(
                "istio-gateway",
                api_version="networking.istio.io/v1",
                kind="Gateway",
                metadata={"name": "web", "namespace": "shared"},
                opts=opts,
            ),
            k8s.apiextensions.CustomResource(
                "gateway-api-gateway",
                api_version="gateway.networking.k8s.io/v1",
                kind="Gateway",
                metadata={"name": "web", "namespace": "shared"},
                opts=opts,
            ),
            k8s.core.v1.ConfigMap("auto-1", metadata={"namespace": "shared"}, opts=opts),
            k8s.core.v1.ConfigMap("auto-2", metadata={"namespace": "shared"}, opts=opts),
        ]

    assert plan.duplicate_objects(run_component(build)) == {}


def test_the_same_api_group_in_two_versions_is_one_object() -> None:
    def build(p: k8s.Provider) -> list[pulumi.Resource]:
        opts = pulumi.ResourceOptions(provider=p)
        metadata = {"name": "web", "namespace": "todo"}
        spec = {"maxReplicas": 2, "scaleTargetRef": {"kind": "Deployment", "name": "web"}}
        return [
            k8s.autoscaling.v2.HorizontalPodAutoscaler("hpa-v2", metadata=metadata, spec=spec, opts=opts),
            k8s.autoscaling.v1.HorizontalPodAutoscaler("hpa-v1", metadata=metadata, spec=spec, opts=opts),
        ]

    (second,) = plan.duplicate_objects(run_component(build))
    assert second == "kubernetes:autoscaling/v2:HorizontalPodAutoscaler hpa-v2"


def test_a_stack_with_a_duplicate_fails_the_plan(
    stack_plans: dict[str, mockrun.PlanResult],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prod = stack_plans["prod"]
    (original,) = [r for r in prod.resources if r.name == "prod-todo-namespace"]
    renamed = {"urn": original.urn + "-copy", "name": "prod-minio-namespace-copy"}
    copy = mockrun.PlannedResource(**{**original.__dict__, **renamed})
    doubled = mockrun.PlanResult(prod.stack, [*prod.resources, copy], prod.outputs, prod.secret_outputs)
    monkeypatch.setattr(mockrun, "run_stack", lambda stack, preview=True: doubled)
    assert plan.run(argparse.Namespace(stack="prod", out=tmp_path, quiet=True)) == plan.EXIT_INVALID
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "the same Kubernetes object" in line]
    assert "prod-todo-namespace" in line and "prod-minio-namespace-copy" in line and "Namespace todo" in line
