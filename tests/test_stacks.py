"""Every stack builds offline with its real config, and every object it renders is valid."""

from __future__ import annotations

import copy

import pytest

from deploy import mockrun
from deploy import validate as schema
from deploy.plan import validate_objects


def test_every_kubernetes_object_is_valid(stack_plan: mockrun.PlanResult) -> None:
    kubernetes = [r for r in stack_plan.resources if r.is_kubernetes_object]
    assert kubernetes, "a stack with no Kubernetes objects tests nothing"
    invalid, unchecked = validate_objects(stack_plan, "1.34")
    assert invalid == {}
    if unchecked:
        pytest.skip(unchecked.line())


def test_every_kubernetes_resource_uses_the_stacks_explicit_provider(stack_plan: mockrun.PlanResult) -> None:
    providers = {r.urn for r in stack_plan.resources if r.type == "pulumi:providers:kubernetes"}
    assert len(providers) == 1, "one Kubernetes provider per stack"
    (provider,) = providers
    for resource in stack_plan.resources:
        if resource.type.startswith("kubernetes:") and resource.custom:
            assert resource.provider.startswith(provider + "::"), f"{resource.name} does not use {provider}"


def test_every_component_uses_a_scaleplane_type_token(stack_plan: mockrun.PlanResult) -> None:
    for resource in stack_plan.resources:
        if not resource.custom and not resource.type.startswith("kubernetes:"):
            assert resource.type.startswith("scaleplane:"), resource.type
            assert resource.type.count(":") == 2


def test_children_are_parented_and_named_after_their_component(stack_plan: mockrun.PlanResult) -> None:
    by_urn = {r.urn: r for r in stack_plan.resources}
    for resource in stack_plan.resources:
        parent = by_urn.get(resource.parent)
        if parent is not None:
            assert resource.name.startswith(parent.name), f"{resource.name} under {parent.name}"


def test_long_running_containers_are_production_ready(stack_plan: mockrun.PlanResult) -> None:
    for resource in stack_plan.resources:
        if resource.type not in ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet"):
            continue
        for container in resource.inputs["spec"]["template"]["spec"]["containers"]:
            where = f"{resource.name}/{container['name']}"
            assert container.get("livenessProbe") and container.get("readinessProbe"), where
            assert container["resources"]["requests"].get("cpu"), where
            assert container["resources"]["requests"].get("memory"), where
            assert container["resources"]["limits"].get("memory"), where
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), where


def test_stack_outputs_are_never_invented(stack_plan: mockrun.PlanResult) -> None:
    assert stack_plan.outputs["environment"] == stack_plan.stack
    # The balancer's address only exists after a real deploy.
    assert stack_plan.outputs["todoUrl"] == mockrun.UNKNOWN


def test_no_credential_reaches_a_plain_input(stack_plan: mockrun.PlanResult) -> None:
    """Generated passwords only ever travel as secrets (or as secretKeyRefs)."""
    for resource in stack_plan.resources:
        if resource.type == "kubernetes:core/v1:Secret":
            assert resource.secret_paths, f"{resource.name} carries data that is not marked secret"


def test_stacks_differ_in_shape(stack_plans: dict[str, mockrun.PlanResult]) -> None:
    shapes = {
        stack: tuple(sorted((r.type, str(r.inputs.get("spec", {}).get("replicas"))) for r in plan.resources))
        for stack, plan in stack_plans.items()
    }
    assert len(set(shapes.values())) == len(shapes)


def test_schema_check_catches_a_broken_object(stack_plans: dict[str, mockrun.PlanResult]) -> None:
    deployment = next(r for r in stack_plans["prod"].resources if r.type == "kubernetes:apps/v1:Deployment")
    broken = copy.deepcopy(deployment.inputs)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {"port": 80}
    problems = list(schema.errors(broken, "1.34"))
    assert problems and "httpGett" in problems[0]
    wrong_type = copy.deepcopy(deployment.inputs)
    wrong_type["spec"]["replicas"] = "three"
    assert any("replicas" in p for p in schema.errors(wrong_type, "1.34"))


@pytest.mark.parametrize("version", ["1.32", "1.34"])
def test_objects_validate_against_the_requested_version(
    stack_plans: dict[str, mockrun.PlanResult], version: str
) -> None:
    hpa = next(r for r in stack_plans["prod"].resources if r.type.endswith("HorizontalPodAutoscaler"))
    assert list(schema.errors(hpa.inputs, version)) == []


def test_cloud_clusters_export_their_kubeconfig_only_as_a_secret(stack_plan: mockrun.PlanResult) -> None:
    if stack_plan.stack == "local":
        assert "kubeconfig" not in stack_plan.outputs
    else:
        assert "kubeconfig" in stack_plan.secret_outputs
