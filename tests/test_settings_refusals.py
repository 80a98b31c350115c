"""Settings refuse what Kubernetes or the cloud would refuse, naming the keys involved."""

from __future__ import annotations

import json
from typing import Any

import pytest

import settings
from deploy.project import stack_config
from settings import checks


def _stack(stack: str, **changes: Any) -> dict[str, str]:
    """A shipped stack's raw config with sections merged (None deletes a key)."""
    raw = stack_config(stack)
    for key, value in changes.items():
        full = key if ":" in key else f"scaleplane:{key}"
        if value is None:
            raw.pop(full, None)
        elif isinstance(value, dict) and full in raw:
            raw[full] = json.dumps(_merge(json.loads(raw[full]), value))
        else:
            raw[full] = value if isinstance(value, str) else json.dumps(value)
    return raw


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def refused(stack: str, **changes: Any) -> list[str]:
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_config(_stack(stack, **changes), require_provider_guard=True)
    return caught.value.problems


def accepted(stack: str, **changes: Any) -> settings.Settings:
    return settings.from_config(_stack(stack, **changes), require_provider_guard=True)


# -- two sections, one object -----------------------------------------------------------------


def test_two_sections_creating_one_namespace_are_refused_naming_both() -> None:
    (problem,) = refused("local", minio={"namespace": "todo"})
    assert problem.startswith("scaleplane:minio.namespace: 'todo' is also scaleplane:todo.namespace")


def test_a_mesh_namespace_shared_with_an_app_is_refused() -> None:
    (problem,) = refused("staging", todo={"namespace": "istio-ingress"})
    assert "scaleplane:istio.gateway.namespace" in problem and "scaleplane:todo.namespace" in problem


def test_two_services_with_one_name_are_refused_naming_both() -> None:
    (problem,) = refused("local", todo={"name": "mongodb"})
    assert problem.startswith("scaleplane:todo.name: 'mongodb' is also scaleplane:todo.mongodb (its Service mongodb)")
    assert "namespace 'todo'" in problem


@pytest.mark.parametrize(
    ("section", "namespace"),
    [("todo", "kube-system"), ("minio", "kube-public"), ("todo", "default"), ("database", "kube-node-lease")],
)
def test_system_namespaces_are_never_created_or_labelled(section: str, namespace: str) -> None:
    (problem,) = refused("local", **{section: {"namespace": namespace}})
    assert problem.startswith(f"scaleplane:{section}.namespace: '{namespace}' is a namespace Kubernetes owns")


def test_metrics_server_may_install_into_kube_system_which_it_does_not_create() -> None:
    assert accepted("local").metrics_server.namespace == "kube-system"


# -- resources and sizes -----------------------------------------------------------------------


def test_memory_request_above_limit_is_an_error() -> None:
    (problem,) = refused("local", todo={"resources": {"memoryRequest": "2Gi", "memoryLimit": "1Gi"}})
    assert problem == "scaleplane:todo.resources: memoryRequest (2Gi) must not exceed memoryLimit (1Gi)"


def test_quantities_are_compared_by_value_not_text() -> None:
    config = accepted("local", todo={"resources": {"memoryRequest": "1024Mi", "memoryLimit": "1Gi"}})
    assert config.todo.resources.memory_request == "1024Mi"
    assert accepted("local", todo={"resources": {"cpuRequest": "1e-1"}}).todo.resources.cpu_request == "1e-1"


@pytest.mark.parametrize("size", ["0", "0Gi", "1", "1k", "1023Ki", "64.1Ti", "100Pi", "999999Ti", "-1Gi"])
def test_zero_tiny_or_absurd_volume_sizes_are_refused(size: str) -> None:
    (problem,) = refused("local", minio={"storageSize": size})
    assert problem.startswith("scaleplane:minio.storageSize:") and size in problem


@pytest.mark.parametrize("size", ["1Mi", "1.5Gi", "64Ti", "1e9", "500M"])
def test_sane_volume_sizes_pass(size: str) -> None:
    assert accepted("local", minio={"storageSize": size}).minio.storage_size == size
    assert accepted("local", database={"storageSize": size}).database is not None


def test_a_malformed_quantity_names_the_key() -> None:
    (problem,) = refused("local", todo={"mongodb": {"storageSize": "8 GB"}})
    assert problem.startswith('scaleplane:todo.mongodb.storageSize: "8 GB" is not a Kubernetes quantity')


# -- StorageClasses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"todo": {"mongodb": {"storageClass": "nosuchclass"}}}, "scaleplane:todo.mongodb.storageClass"),
        ({"minio": {"storageClass": "nosuchclass"}}, "scaleplane:minio.storageClass"),
    ],
)
def test_a_storage_class_nothing_creates_is_refused(changes: dict[str, Any], key: str) -> None:
    (problem,) = refused("prod", **changes)
    assert problem.startswith(f"{key}: StorageClass 'nosuchclass' is neither created by this stack")
    assert "'gp3'" in problem


def test_classes_the_stack_creates_or_names_are_accepted() -> None:
    assert accepted("prod", minio={"storageClass": "gp3"}).minio.storage_class == "gp3"
    assert accepted("local", minio={"storageClass": "scaleplane-snapshot"}).minio.storage_class
    kind = {"existingCluster": {"context": "kind-scaleplane", "storageClasses": ["standard"]}}
    assert accepted("local", minio={"storageClass": "standard"}, **kind).minio.storage_class == "standard"
    (problem,) = refused("local", minio={"storageClass": "standard"})
    assert "existingCluster.storageClasses" in problem


def test_the_database_class_must_exist_on_a_cluster_the_stack_creates() -> None:
    (problem,) = refused("prod", storage={"existingStorageClass": "gp2"})
    assert problem.startswith("scaleplane:storage.existingStorageClass: 'gp2' is not a StorageClass the eks cluster")


def test_the_storage_section_reports_the_class_it_provides() -> None:
    config = accepted("local")
    assert config.storage is not None
    assert config.storage.provided_storage_class == config.storage.storage_class_name
    prod = accepted("prod").storage
    assert prod is not None and prod.provided_storage_class == "gp3"


# -- placement --------------------------------------------------------------------------------


def test_a_label_typo_that_no_node_group_carries_is_refused() -> None:
    (problem,) = refused("prod", todo={"placement": {"nodeSelector": {"environmnet": "production"}}})
    assert problem.startswith("scaleplane:todo.placement.nodeSelector.environmnet: no node group of scaleplane:eks")
    assert "production: no label environmnet" in problem and "development: no label environmnet" in problem


def test_required_affinity_is_matched_against_group_labels() -> None:
    wrong = {"key": "environment", "operator": "In", "values": ["staging"]}
    (problem,) = refused("prod", todo={"placement": {"requiredNodeAffinity": [wrong]}})
    assert problem.startswith("scaleplane:todo.placement.requiredNodeAffinity[0]:")
    assert "production: environment is production" in problem


@pytest.mark.parametrize(
    ("requirement", "ok"),
    [
        ({"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}, True),
        ({"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}, False),
        ({"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1c"]}, True),
        ({"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-west-2a"]}, False),
        ({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large"]}, True),
        ({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c7g.large"]}, False),
        ({"key": "kubernetes.io/hostname", "operator": "Exists"}, True),
        ({"key": "environment", "operator": "DoesNotExist"}, False),
    ],
)
def test_well_known_node_labels_come_from_the_groups(requirement: dict[str, Any], ok: bool) -> None:
    changes = {"minio": {"placement": {"requiredNodeAffinity": [requirement]}}}
    if ok:
        assert accepted("prod", **changes).minio.placement.required_node_affinity
    else:
        (problem,) = refused("prod", **changes)
        assert problem.startswith("scaleplane:minio.placement.requiredNodeAffinity[0]: no node group")


def test_a_taint_the_pods_do_not_tolerate_rules_the_group_out() -> None:
    groups = json.loads(stack_config("prod")["scaleplane:eks"])["nodeGroups"]
    groups[1]["taints"][0]["effect"] = "NoSchedule"
    placement = {"nodeSelector": {"environment": "development"}}
    (problem,) = refused("prod", eks={"nodeGroups": groups}, minio={"placement": placement})
    assert "development: taint environment=development:NoSchedule is not tolerated" in problem
    toleration = {"key": "environment", "value": "development", "effect": "NoSchedule"}
    placement = {**placement, "tolerations": [toleration]}
    assert accepted("prod", eks={"nodeGroups": groups}, minio={"placement": placement})


def test_on_an_existing_cluster_unknown_placement_is_a_warning_not_an_error() -> None:
    config = accepted("local", minio={"placement": {"nodeSelector": {"disk": "ssd"}}})
    warnings = checks.warnings(config)
    assert any(w.startswith("scaleplane:minio.placement.nodeSelector.disk: requires disk=ssd") for w in warnings)
    assert checks.warnings(accepted("prod")) == []


def test_pulumi_up_logs_the_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = _stack("local")
    logged: list[str] = []
    monkeypatch.setattr(runtime_config, "get_config_env", lambda: raw)
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: logged.append(message))
    settings.load()
    assert logged and logged[0].startswith("scaleplane:todo.placement.nodeSelector.environment: requires")


# -- the default-provider guard and the cloud's own limits ------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "pulumi:disable-default-providers: required key is missing"),
        ([""], 'pulumi:disable-default-providers: [""] leaves the default kubernetes provider enabled'),
        (["aws"], 'pulumi:disable-default-providers: ["aws"] leaves the default kubernetes provider enabled'),
        ("kubernetes", 'pulumi:disable-default-providers: must be a list of provider names (got "kubernetes")'),
        ([1.5], "pulumi:disable-default-providers: must be a list of provider names (got [1.5])"),
    ],
)
def test_the_default_provider_guard_must_stay(value: Any, expected: str) -> None:
    (problem,) = refused("dev", **{"pulumi:disable-default-providers": value})
    assert problem.startswith(expected), problem


def test_the_guard_accepts_kubernetes_or_everything() -> None:
    assert accepted("dev", **{"pulumi:disable-default-providers": ["aws", "kubernetes"]})
    assert accepted("dev", **{"pulumi:disable-default-providers": ["*"]})


def test_price_expander_is_refused_on_aws() -> None:
    (problem,) = refused("prod", eks={"clusterAutoscaler": {"expander": "price"}})
    assert problem.startswith("scaleplane:eks.clusterAutoscaler: expander 'price' works only on GCE, GKE")
    assert accepted("prod", eks={"clusterAutoscaler": {"expander": "priority"}})


# -- images: one grammar, one meaning of pinned, shared with the policy pack ------------------


@pytest.mark.parametrize(
    "image",
    [
        "registry:5000/team/app:1.0",
        "localhost:5000/app:1.0",
        "localhost/app:1",
        "[::1]:5000/app:1.0",
        "docker.io/library/mongo:7.0.14@sha256:" + "a" * 64,
        "ghcr.io/org/app@sha256:" + "b" * 64,
        "registry.example.com/a/b/c:v1.2.3",
    ],
)
def test_every_valid_pinned_reference_is_accepted(image: str) -> None:
    assert accepted("local", todo={"image": image}).todo.image == image


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("mongo", "has no tag"),
        ("registry:5000/app", "has no tag"),
        ("repo:latest", "uses the tag 'latest'"),
        ("Mongo:1.0", "must be lowercase"),
        ("repo@sha256:abc", "the digest must be"),
        ("repo:tag@sha256:" + "g" * 64, "the digest must be"),
        ("repo@md5:" + "a" * 32, "digest algorithm 'md5'"),
    ],
)
def test_unpinned_or_malformed_references_are_refused(image: str, reason: str) -> None:
    (problem,) = refused("local", todo={"image": image})
    assert problem.startswith("scaleplane:todo.image:") and reason in problem, problem


@pytest.mark.parametrize(
    "image",
    ["registry:5000/team/app:1.0", "repo:tag@sha256:" + "c" * 64, "mongo", "repo:latest", "Mongo:1.0", "x@sha256:1"],
)
def test_settings_and_the_policy_pack_agree_on_pinned(image: str) -> None:
    from policy.scaleplane_policy.rules.images import image_problem

    try:
        accepted("local", todo={"image": image})
        settings_ok = True
    except settings.SettingsError:
        settings_ok = False
    assert settings_ok == (image_problem(image) is None)


def test_volume_sizes_fit_the_ebs_type_behind_their_class() -> None:
    (problem,) = refused("prod", minio={"storageSize": "20Ti"})
    assert problem.startswith("scaleplane:minio.storageSize: 20Ti is outside what EBS makes a gp3 volume")
    st1 = {"existingStorageClass": None, "ebs": {"volumeType": "st1"}}
    (problem,) = refused("prod", database={"storageSize": "2Gi"}, storage=st1)
    assert problem.startswith("scaleplane:database.storageSize: 2Gi is outside what EBS makes a st1 volume (125 GiB")
    assert accepted("prod", database={"storageSize": "125Gi"}, storage=st1).database is not None
    io2 = {"existingStorageClass": None, "ebs": {"volumeType": "io2"}}
    assert accepted("prod", database={"storageSize": "60Ti"}, storage=io2).database is not None
    assert accepted("local", minio={"storageSize": "20Ti"}).minio.storage_size == "20Ti"  # not EBS: 64Ti bound only


def test_the_storage_classes_settings_credit_to_eks_are_the_ones_its_cluster_creates() -> None:
    from deploy import mockrun

    plan = mockrun.run_stack("prod")
    created = {r.inputs["metadata"]["name"] for r in plan.of_type("kubernetes:storage.k8s.io/v1:StorageClass")}
    assert set(checks.CLUSTER_STORAGE_CLASSES["eks"]) <= created
