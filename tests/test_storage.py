"""Snapshot storage: the classes each driver renders, the LocalPV-ZFS chart values, settings checks."""

from __future__ import annotations

import json

import pytest
import yaml
from bluegreen_helpers import (
    kube_objects,
    one,
    raw_config,
    reference_path,
    run_components,
    unknown_value_paths,
    validate_object,
)

import settings
from components.storage import ZFS_LOCALPV_REPO, zfs_localpv_values
from settings import SettingsError

EBS = {"driver": "ebs", "ebs": {"volumeType": "gp3"}}
ZFS = {"driver": "zfs-localpv", "zfsLocalPv": {"poolName": "tank"}}


def storage_plan(storage: dict) -> object:
    return run_components(raw_config(None, storage))


def test_ebs_storage_class_is_encrypted_gp3_waiting_for_its_consumer() -> None:
    plan = storage_plan(EBS)
    cls = one(plan, "StorageClass").inputs
    assert cls["provisioner"] == "ebs.csi.aws.com"
    assert cls["parameters"] == {"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"}
    assert cls["volumeBindingMode"] == "WaitForFirstConsumer"
    assert cls["allowVolumeExpansion"] is True
    assert cls["reclaimPolicy"] == "Retain"
    assert cls["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "false"


def test_ebs_snapshot_class_retains_snapshots() -> None:
    plan = storage_plan(EBS)
    snapshot_class = one(plan, "VolumeSnapshotClass")
    assert snapshot_class.type == "kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshotClass"
    assert snapshot_class.inputs["driver"] == "ebs.csi.aws.com"
    assert snapshot_class.inputs["deletionPolicy"] == "Retain"


def test_ebs_installs_no_driver_the_eks_add_ons_already_provide() -> None:
    plan = storage_plan(EBS)
    assert not [r for r in plan.resources if r.type.startswith("kubernetes:helm.sh/")]
    assert {r.inputs["kind"] for r in kube_objects(plan)} == {"StorageClass", "VolumeSnapshotClass"}


def test_ebs_kms_key_is_passed_to_the_driver() -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"
    plan = storage_plan({"driver": "ebs", "ebs": {"kmsKeyId": key}})
    assert one(plan, "StorageClass").inputs["parameters"]["kmsKeyId"] == key


def test_zfs_localpv_chart_is_pinned_and_its_values_exist_in_the_reference_chart() -> None:
    plan = storage_plan(ZFS)
    (release,) = [r for r in plan.resources if r.type == "kubernetes:helm.sh/v3:Release"]
    assert release.inputs["chart"] == "zfs-localpv"
    assert release.inputs["repositoryOpts"] == {"repo": ZFS_LOCALPV_REPO}
    # The reference Chart.yaml carries the source's -prerelease placeholder; 2.6.2 is the published chart.
    chart = yaml.safe_load(reference_path("charts", "zfs-localpv", "Chart.yaml").read_text())
    assert release.inputs["version"] == chart["version"].removesuffix("-prerelease") == "2.6.2"
    assert release.inputs["namespace"] == "openebs"
    assert unknown_value_paths(release.inputs["values"], "zfs-localpv") == []
    assert release.inputs["values"]["analytics"]["enabled"] is False
    assert release.inputs["values"]["crds"]["csi"]["volumeSnapshots"]["enabled"] is True


def test_zfs_localpv_is_never_uninstalled_because_its_node_agent_would_destroy_the_datasets() -> None:
    # The chart's CRDs are templates: uninstalling deletes every ZFSVolume, and the node agent
    # runs `zfs destroy` for each deleted ZFSVolume, retained PVs or not.
    (release,) = [r for r in storage_plan(ZFS).resources if r.type == "kubernetes:helm.sh/v3:Release"]
    assert release.retain_on_delete


def test_zfs_localpv_optional_values_also_exist_in_the_reference_chart() -> None:
    kubelet_dir = "/var/snap/microk8s/common/var/lib/kubelet/"
    storage = {"driver": "zfs-localpv", "zfsLocalPv": {"kubeletDir": kubelet_dir, "installSnapshotCrds": False}}
    spec = settings.from_config(raw_config(None, storage)).storage
    assert spec is not None
    values = zfs_localpv_values(spec)
    assert unknown_value_paths(values, "zfs-localpv") == []
    assert values["zfsNode"]["kubeletDir"] == "/var/snap/microk8s/common/var/lib/kubelet/"
    assert values["crds"]["csi"]["volumeSnapshots"]["enabled"] is False


def test_zfs_classes_use_the_pool_and_wait_for_the_chart_that_installs_the_crds() -> None:
    plan = storage_plan({**ZFS, "zfsLocalPv": {"poolName": "tank", "nodes": ["node-a"]}})
    (release,) = [r for r in plan.resources if r.type == "kubernetes:helm.sh/v3:Release"]
    cls = one(plan, "StorageClass")
    assert cls.inputs["provisioner"] == "zfs.csi.openebs.io"
    assert cls.inputs["parameters"] == {"poolname": "tank", "fstype": "zfs"}
    assert cls.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    assert cls.inputs["allowedTopologies"] == [
        {"matchLabelExpressions": [{"key": "kubernetes.io/hostname", "values": ["node-a"]}]}
    ]
    snapshot_class = one(plan, "VolumeSnapshotClass")
    assert snapshot_class.inputs["driver"] == "zfs.csi.openebs.io"
    assert snapshot_class.inputs["deletionPolicy"] == "Retain"
    assert release.urn in snapshot_class.dependencies
    assert release.urn in cls.dependencies


@pytest.mark.parametrize("storage", [EBS, ZFS])
def test_storage_objects_are_valid_kubernetes(storage: dict) -> None:
    plan = storage_plan(storage)
    objects = kube_objects(plan)
    assert objects
    for resource in objects:
        assert resource.provider.endswith("test-provider-id"), resource.name
        validate_object(resource.inputs)


@pytest.mark.parametrize(
    ("storage", "key"),
    [
        ({"driver": "ebs", "zfsLocalPv": {}}, "zfsLocalPv is set but driver is 'ebs'"),
        ({"driver": "zfs-localpv", "ebs": {}}, "ebs is set but driver is 'zfs-localpv'"),
        ({"driver": "ebs", "ebs": {"encrypted": False}}, "scaleplane:storage.ebs.encrypted"),
        ({"driver": "nfs"}, "scaleplane:storage.driver"),
        ({"driver": "ebs", "ebs": {"kmsKeyId": "alias/mine"}}, "scaleplane:storage.ebs.kmsKeyId"),
        ({"driver": "ebs", "existingStorageClass": "gp3", "ebs": {}}, "set one or the other"),
        ({"driver": "ebs", "existingStorageClass": "gp3", "defaultClass": True}, "defaultClass applies"),
    ],
)
def test_bad_storage_settings_are_refused_naming_the_key(storage: dict, key: str) -> None:
    raw = raw_config(None, None)
    raw["scaleplane:storage"] = json.dumps(storage)
    with pytest.raises(SettingsError) as error:
        settings.from_config(raw)
    assert key in str(error.value)


def test_the_local_and_prod_stacks_choose_their_drivers() -> None:
    from deploy.project import stack_config

    local = settings.from_config(stack_config("local"))
    prod = settings.from_config(stack_config("prod"))
    assert local.storage is not None and local.storage.driver == "csi-hostpath"
    assert prod.storage is not None and prod.storage.driver == "ebs"


def test_an_existing_storage_class_is_used_not_duplicated() -> None:
    from bluegreen_helpers import BLUE_IMAGE

    database = {"active": "blue", "colours": {"blue": {"image": BLUE_IMAGE}}}
    plan = run_components(raw_config(database, {"driver": "ebs", "existingStorageClass": "gp3"}))
    assert kube_objects(plan, "StorageClass") == []
    assert one(plan, "VolumeSnapshotClass").inputs["driver"] == "ebs.csi.aws.com"
    assert one(plan, "PersistentVolumeClaim").inputs["spec"]["storageClassName"] == "gp3"


def test_on_eks_the_database_uses_the_clusters_gp3_class_and_only_adds_snapshots() -> None:
    from bluegreen_helpers import run_program

    from deploy.project import stack_config

    raw = stack_config("prod")
    assert settings.from_config(raw).cluster == "eks"
    plan = run_program(raw, "prod")
    classes = kube_objects(plan, "StorageClass")
    assert [c.inputs["metadata"]["name"] for c in classes] == ["gp3"]  # the EKS component's, once
    assert "-cluster" in classes[0].parent.rpartition("::")[2]
    snapshot_class = one(plan, "VolumeSnapshotClass")
    assert snapshot_class.inputs["driver"] == classes[0].inputs["provisioner"] == "ebs.csi.aws.com"
    assert one(plan, "PersistentVolumeClaim", "data-percona-blue").inputs["spec"]["storageClassName"] == "gp3"
    addons = [r.inputs.get("addonName") for r in plan.resources if r.type == "aws:eks/addon:Addon"]
    assert {"aws-ebs-csi-driver", "snapshot-controller"} <= set(addons)
    # The storage component installs no driver of its own on EKS.
    storage = [r for r in plan.resources if "SnapshotStorage$" in r.urn]
    assert [r.type for r in storage] == ["kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshotClass"]


def test_zfs_namespace_is_ours_privileged_retained_and_denies_ingress() -> None:
    plan = storage_plan(ZFS)
    (release,) = [r for r in plan.resources if r.type == "kubernetes:helm.sh/v3:Release"]
    namespace = one(plan, "Namespace")
    labels = namespace.inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert namespace.retain_on_delete, "deleting the namespace would delete the ZFSVolumes and so the datasets"
    assert not release.inputs.get("createNamespace")
    assert release.inputs["namespace"] == namespace.inputs["metadata"]["name"] == "openebs"
    deny = one(plan, "NetworkPolicy")
    assert deny.inputs["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert deny.urn in release.dependencies
