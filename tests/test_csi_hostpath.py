"""The CSI hostpath driver and snapshot controller: the local stack's storage on a stock kind cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
from bluegreen_helpers import BLUE_IMAGE, kube_objects, one, raw_config, run_components, validate_object

import settings
from components import csi_hostpath
from deploy import mockrun, reference
from deploy.project import stack_config
from policy.scaleplane_policy import evaluate
from settings import SettingsError

HOSTPATH = {"driver": "csi-hostpath"}


@pytest.fixture(scope="module")
def plan() -> mockrun.PlanResult:
    database = {"active": "blue", "colours": {"blue": {"image": BLUE_IMAGE}}}
    return run_components(raw_config(database, HOSTPATH))


def named(plan: mockrun.PlanResult, name: str) -> mockrun.PlannedResource:
    (found,) = [r for r in plan.resources if r.name == name]
    return found


def pod_spec(plan: mockrun.PlanResult, kind: str) -> dict[str, Any]:
    name = {"StatefulSet": "csi-hostpathplugin", "Deployment": "snapshot-controller"}[kind]
    return one(plan, kind, name).inputs["spec"]["template"]["spec"]


def test_the_local_stack_needs_nothing_on_the_host() -> None:
    local = settings.from_config(stack_config("local"))
    assert local.storage is not None and local.storage.driver == "csi-hostpath"
    assert local.storage.csi_driver == "hostpath.csi.k8s.io"


def test_classes_provision_with_the_hostpath_driver_and_retain(plan: mockrun.PlanResult) -> None:
    cls = one(plan, "StorageClass").inputs
    assert cls["provisioner"] == "hostpath.csi.k8s.io" and cls["parameters"] == {}
    assert cls["reclaimPolicy"] == "Retain" and cls["volumeBindingMode"] == "WaitForFirstConsumer"
    snapshot_class = one(plan, "VolumeSnapshotClass")
    assert snapshot_class.inputs["driver"] == "hostpath.csi.k8s.io"
    assert snapshot_class.inputs["deletionPolicy"] == "Retain"
    for waited in ("storage-csi-hostpath-plugin", "storage-csi-hostpath-snapshot-controller"):
        assert named(plan, waited).urn in snapshot_class.dependencies, waited
    crds = named(plan, "storage-csi-hostpath-snapshot-crds")
    assert crds.urn in snapshot_class.dependencies
    assert one(plan, "CSIDriver").inputs["metadata"]["name"] == "hostpath.csi.k8s.io"


def test_the_snapshot_crds_come_from_the_pinned_external_snapshotter(plan: mockrun.PlanResult) -> None:
    crds = named(plan, "storage-csi-hostpath-snapshot-crds")
    assert crds.type == "kubernetes:yaml/v2:ConfigGroup"
    assert crds.retain_on_delete, "deleting the CRDs would delete the retained VolumeSnapshots"
    # The group's children (the CRDs) are retained through its transform; mocks do not run
    # transforms, so the transform itself is checked.
    child = pulumi.ResourceTransformArgs(
        custom=True,
        type_="kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
        name="crd",
        props={"spec": {}},
        opts=pulumi.ResourceOptions(),
    )
    result = csi_hostpath.retain_on_delete(child)
    assert result.opts.retain_on_delete is True and result.props == {"spec": {}}
    files = crds.inputs["files"]
    assert len(files) == 3 and all("/external-snapshotter/v8.6.0/client/config/crd/" in f for f in files)
    assert {f.rsplit("_", 1)[1] for f in files} == {
        "volumesnapshotclasses.yaml",
        "volumesnapshotcontents.yaml",
        "volumesnapshots.yaml",
    }
    # The very files the pinned reference set holds (and the plan validates snapshot objects with).
    pinned = reference.manifest()
    kinds = ("VolumeSnapshotClass", "VolumeSnapshotContent", "VolumeSnapshot")
    assert sorted(files) == sorted(pinned[f"crds/snapshot.storage.k8s.io/{kind}.yaml"].url for kind in kinds)
    assert csi_hostpath.IMAGES["snapshot-controller"].endswith(f":{csi_hostpath.SNAPSHOTTER_VERSION}")
    assert csi_hostpath.IMAGES["csi-snapshotter"].endswith(f":{csi_hostpath.SNAPSHOTTER_VERSION}")
    for dependant in ("storage-csi-hostpath-plugin", "storage-csi-hostpath-snapshot-controller"):
        assert crds.urn in named(plan, dependant).dependencies


def test_the_crds_are_left_out_where_the_cluster_has_them() -> None:
    plan = run_components(raw_config(None, {"driver": "csi-hostpath", "csiHostPath": {"installSnapshotCrds": False}}))
    assert not [r for r in plan.resources if r.type.startswith("kubernetes:yaml")]


def test_every_container_requests_resources_and_has_both_probes(plan: mockrun.PlanResult) -> None:
    resources = [{"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs} for r in plan.resources]
    # Resources and probes only: Pod Security and NetworkPolicies are the security tests' (test_security).
    config = {
        "all": "mandatory",
        "container-security": "disabled",
        "production-availability": "disabled",
        "network-policies": "disabled",
    }
    assert [v.message for v in evaluate(resources, config)] == []
    containers = pod_spec(plan, "StatefulSet")["containers"]
    assert [c["name"] for c in containers] == [
        "hostpath",
        "node-driver-registrar",
        "liveness-probe",
        "csi-attacher",
        "csi-provisioner",
        "csi-resizer",
        "csi-snapshotter",
    ]
    # The controller sidecars' probes are their leader-election health, served only with both flags.
    for container in containers[3:]:
        assert "--leader-election" in container["args"]
        port = container["readinessProbe"]["httpGet"]["port"]
        assert f"--http-endpoint=:{port}" in container["args"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz/leader-election"
    ports = [p["containerPort"] for c in containers for p in c.get("ports", [])]
    assert len(ports) == len(set(ports)), "one pod network: every endpoint needs its own port"


def test_only_the_driver_is_privileged(plan: mockrun.PlanResult) -> None:
    containers = {c["name"]: c for c in pod_spec(plan, "StatefulSet")["containers"]}
    assert containers.pop("hostpath")["securityContext"] == {"privileged": True}
    for name, container in containers.items():
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}, name
        assert "privileged" not in context, name
    controller = pod_spec(plan, "Deployment")
    assert controller["securityContext"]["runAsNonRoot"] is True


def test_namespaces_enforce_pod_security_and_deny_ingress(plan: mockrun.PlanResult) -> None:
    levels = {
        ns.inputs["metadata"]["name"]: ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for ns in kube_objects(plan, "Namespace")
        if ns.inputs["metadata"]["name"] in ("csi-hostpath", "snapshot-controller")
    }
    assert levels == {"csi-hostpath": "privileged", "snapshot-controller": "restricted"}
    policies = [p.inputs for p in kube_objects(plan, "NetworkPolicy")]
    for namespace in levels:
        mine = [p for p in policies if p["metadata"]["namespace"] == namespace]
        deny = [p for p in mine if p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"]]
        assert deny and "ingress" not in deny[0]["spec"], namespace
        (egress,) = [p for p in mine if p["spec"]["policyTypes"] == ["Egress"]]
        ports = sorted(port["port"] for rule in egress["spec"]["egress"] for port in rule["ports"])
        assert ports == [53, 53, 443, 6443], namespace


def test_rbac_follows_each_sidecars_release(plan: mockrun.PlanResult) -> None:
    roles = {r.inputs["metadata"]["name"]: r.inputs["rules"] for r in kube_objects(plan, "ClusterRole")}
    for sidecar, rules in csi_hostpath.SIDECAR_CLUSTER_RULES.items():
        assert roles[f"scaleplane-csi-hostpath-{sidecar}"] == rules
    controller = roles["scaleplane-snapshot-controller"]
    assert not [r for r in controller if "groupsnapshot.storage.k8s.io" in r["apiGroups"]]
    bindings = kube_objects(plan, "ClusterRoleBinding")
    subjects = {b.inputs["roleRef"]["name"]: b.inputs["subjects"][0]["name"] for b in bindings}
    assert subjects["scaleplane-csi-hostpath-snapshotter"] == "csi-hostpathplugin"
    assert subjects["scaleplane-snapshot-controller"] == "snapshot-controller"


def test_every_object_is_valid_kubernetes(plan: mockrun.PlanResult) -> None:
    for resource in kube_objects(plan):
        validate_object(resource.inputs)


def test_green_is_restored_from_a_snapshot_taken_with_the_hostpath_class() -> None:
    database = {
        "active": "blue",
        "colours": {"blue": {"image": BLUE_IMAGE}, "green": {"image": BLUE_IMAGE, "restoreFrom": "blue-1"}},
        "snapshots": {"blue-1": {"source": "data-percona-blue"}},
    }
    plan = run_components(raw_config(database, HOSTPATH))
    snapshot = one(plan, "VolumeSnapshot").inputs
    assert snapshot["spec"]["volumeSnapshotClassName"] == one(plan, "VolumeSnapshotClass").inputs["metadata"]["name"]
    green = one(plan, "PersistentVolumeClaim", "data-percona-green-from-blue-1").inputs["spec"]
    assert green["dataSource"]["kind"] == "VolumeSnapshot"
    assert green["storageClassName"] == one(plan, "StorageClass").inputs["metadata"]["name"]


@pytest.mark.parametrize(
    ("storage", "key"),
    [
        ({"driver": "ebs", "csiHostPath": {}}, "csiHostPath is set but driver is 'ebs'"),
        ({"driver": "csi-hostpath", "csiHostPath": {"dataDir": "relative/"}}, "scaleplane:storage.csiHostPath.dataDir"),
        ({"driver": "csi-hostpath", "csiHostPath": {"namespace": "Bad"}}, "scaleplane:storage.csiHostPath.namespace"),
    ],
)
def test_bad_hostpath_settings_are_refused_naming_the_key(storage: dict[str, Any], key: str) -> None:
    raw = raw_config(None, None)
    raw["scaleplane:storage"] = json.dumps(storage)
    with pytest.raises(SettingsError) as error:
        settings.from_config(raw)
    assert key in str(error.value)


def test_one_namespace_for_both_is_refused() -> None:
    storage = {
        "driver": "csi-hostpath",
        "csiHostPath": {"namespace": "storage", "snapshotControllerNamespace": "storage"},
    }
    with pytest.raises(ValueError, match="snapshotControllerNamespace must differ"):
        run_components(raw_config(None, storage))


def test_the_readmes_real_path_for_local_is_kind_and_pulumi_up() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## The real path", 1)[1]
    steps = section.split("```sh", 1)[1].split("```", 1)[0]
    assert "kind create cluster" in steps and "labels: {environment: development}" in steps
    assert "pulumi up -s local" in steps
    assert "sudo" not in steps and "zpool" not in steps, "the local stack needs no host preparation"
