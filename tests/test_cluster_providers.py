"""One Kubernetes provider per stack, from its cluster, used by every Kubernetes resource."""

from __future__ import annotations

import pytest
import yaml

from deploy import mockrun
from deploy.project import STACKS, stack_config_path

CLUSTER_COMPONENTS = {
    "local": "scaleplane:cluster:ExistingCluster",
    "dev": "scaleplane:cluster:KopsCluster",
    "staging": "scaleplane:cluster:EksCluster",
    "prod": "scaleplane:cluster:EksCluster",
}


@pytest.fixture(scope="module", params=STACKS)
def plan(request: pytest.FixtureRequest) -> mockrun.PlanResult:
    return mockrun.run_stack(request.param)


def test_every_stack_has_a_cluster_kind() -> None:
    assert set(CLUSTER_COMPONENTS) == set(STACKS)


def test_one_kubernetes_provider_per_stack_owned_by_its_cluster(plan: mockrun.PlanResult) -> None:
    (cluster,) = plan.of_type(CLUSTER_COMPONENTS[plan.stack])
    providers = plan.of_type("pulumi:providers:kubernetes")
    assert [p.parent for p in providers] == [cluster.urn]


def test_no_kubernetes_resource_uses_a_default_provider(plan: mockrun.PlanResult) -> None:
    (provider,) = plan.of_type("pulumi:providers:kubernetes")
    kubernetes = [r for r in plan.resources if r.type.startswith("kubernetes:")]
    for resource in kubernetes:
        assert resource.provider, f"{resource.type} {resource.name} has no explicit provider"
        urn, _, _ = resource.provider.rpartition("::")
        assert urn == provider.urn, f"{resource.type} {resource.name} uses {resource.provider}"


def test_cloud_stacks_register_kubernetes_resources(plan: mockrun.PlanResult) -> None:
    # The provider check above must have something to check on the stacks whose clusters
    # install charts and storage classes themselves.
    if plan.stack in ("staging", "prod"):
        assert any(r.type.startswith("kubernetes:") for r in plan.resources)


@pytest.mark.parametrize("stack", STACKS)
def test_default_kubernetes_provider_is_disabled(stack: str) -> None:
    document = yaml.safe_load(stack_config_path(stack).read_text())
    assert "kubernetes" in document["config"]["pulumi:disable-default-providers"]


def test_aws_resources_use_the_clusters_provider_in_the_settings_region(plan: mockrun.PlanResult) -> None:
    aws_resources = [r for r in plan.resources if r.type.startswith("aws:")]
    providers = plan.of_type("pulumi:providers:aws")
    if plan.stack == "local":
        assert not aws_resources and not providers
        return
    (provider,) = providers
    assert provider.inputs["region"] == "us-east-1"
    assert aws_resources
    for resource in aws_resources:
        assert resource.provider.rpartition("::")[0] == provider.urn, f"{resource.type} {resource.name}"
