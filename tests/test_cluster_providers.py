"""One Kubernetes provider per stack, from its cluster, used by every Kubernetes resource."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
import yaml
from test_cluster_kops import KUBECONFIG, fake_kops  # noqa: F401 - the fixture

from deploy import mockrun
from deploy.project import PROJECT_DIR, STACKS, stack_config, stack_config_path

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


#: What each stack's provider is identified by: settings only, never an output of the cluster.
CLUSTER_IDENTIFIERS = {
    "local": "context:kind-scaleplane",
    "dev": "kops:dev.scaleplane.k8s.local",
    "staging": "eks:us-east-1:scaleplane-staging",
    "prod": "eks:us-east-1:scaleplane-prod",
}


def test_every_provider_has_a_known_cluster_identifier_from_settings(plan: mockrun.PlanResult) -> None:
    # The plan runs as a preview: the cloud clusters' kubeconfigs are unknown there, and a
    # provider with an unknown kubeconfig and no identifier plans to replace everything on it.
    (provider,) = plan.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["clusterIdentifier"] == CLUSTER_IDENTIFIERS[plan.stack]
    if plan.stack != "local":
        assert provider.inputs["kubeconfig"] == mockrun.UNKNOWN


def _resized_dev(size: int, kops_binary: Path) -> dict[str, str]:
    config = stack_config("dev")
    kops = json.loads(config["scaleplane:kops"])
    kops["kopsBinary"] = str(kops_binary)
    (nodes,) = [group for group in kops["instanceGroups"] if group["name"] == "nodes"]
    nodes["maxSize"] = size
    config["scaleplane:kops"] = json.dumps(kops)
    return config


def _cluster_only() -> None:
    import settings
    from components.cluster import cluster_for

    config = settings.load()
    cluster_for(f"{config.environment}-cluster", config)


def _main() -> None:
    runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__pulumi_main__")


def test_a_kops_change_keeps_the_providers_identity_known_and_unchanged(fake_kops: Path) -> None:  # noqa: F811
    # The last `up`: kops printed a kubeconfig, so the provider's inputs were all known.
    saved = dict(mockrun.MOCK_OUTPUTS)
    mockrun.MOCK_OUTPUTS["command:local:Command"] = lambda name, inputs: {"stdout": KUBECONFIG, "stderr": ""}
    try:
        before = mockrun.run("dev", _resized_dev(3, fake_kops), _cluster_only, preview=False)
    finally:
        mockrun.MOCK_OUTPUTS.clear()
        mockrun.MOCK_OUTPUTS.update(saved)
    # The next preview: an instance group grows, so the kops command updates and its stdout
    # (the kubeconfig) is unknown until it has run.
    after = mockrun.run("dev", _resized_dev(5, fake_kops), _main, preview=True)

    (old_command,) = before.of_type("command:local:Command")
    (new_command,) = after.of_type("command:local:Command")
    assert old_command.inputs["stdin"] != new_command.inputs["stdin"]
    (old,) = before.of_type("pulumi:providers:kubernetes")
    (new,) = after.of_type("pulumi:providers:kubernetes")
    assert old.inputs["kubeconfig"] != mockrun.UNKNOWN and new.inputs["kubeconfig"] == mockrun.UNKNOWN
    # What the engine compares to decide replace-or-update is known, a plain string, and equal.
    assert isinstance(new.inputs["clusterIdentifier"], str)
    assert new.inputs["clusterIdentifier"] == old.inputs["clusterIdentifier"] == "kops:dev.scaleplane.k8s.local"
    assert "clusterIdentifier" not in new.secret_paths
    # The same provider (same URN) still serves every Kubernetes object of the stack.
    assert old.urn == new.urn
    objects = [r for r in after.resources if r.type.startswith("kubernetes:")]
    assert objects and all(r.provider.rpartition("::")[0] == new.urn for r in objects)
