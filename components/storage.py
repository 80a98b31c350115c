"""Snapshot-capable storage: a CSI StorageClass and a VolumeSnapshotClass, per cluster kind.

- `ebs` (EKS, kops): the cluster component installs the EBS CSI driver and the snapshot
  controller (EKS add-ons aws-ebs-csi-driver and snapshot-controller, or kops'
  snapshotController), and with them the VolumeSnapshot CRDs. This component adds the
  VolumeSnapshotClass, and a StorageClass unless `existingStorageClass` names the one the
  cluster component already creates (EKS: the default encrypted gp3 class). The stack makes it
  depend on the cluster.
- `csi-hostpath` (a local kind/k3d cluster, nothing prepared on the host): installs the CSI
  hostpath driver, the snapshot controller and the VolumeSnapshot CRDs
  (components/csi_hostpath.py), then adds the classes.
- `zfs-localpv` (a local kind/k3d cluster with a ZFS pool on its nodes): installs OpenEBS
  LocalPV-ZFS from its Helm chart, which also installs the VolumeSnapshot CRDs and runs the
  snapshot controller and csi-snapshotter, then adds the classes. The release is retained on
  delete: its CRDs (ZFSVolume among them) are chart templates, so uninstalling it deletes every
  ZFSVolume object, and the node agent destroys a volume's ZFS dataset when its object is
  deleted. `pulumi destroy` leaves the driver installed beside the volumes it keeps.

Both classes keep data when objects go: the StorageClass's reclaimPolicy is Retain (deleting a
PVC leaves its volume) and the VolumeSnapshotClass's deletionPolicy is Retain (deleting a
VolumeSnapshot leaves the snapshot on the backend).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes import _utilities as k8s_utilities

from components.chart_workloads import ChartContainer, ChartRelease, ChartWorkload, declares, fullname
from components.csi_hostpath import CsiHostPath, CsiHostPathArgs
from components.kube import MANAGED_BY, child_opts, namespace
from components.network import deny_ingress
from settings.storage import CsiHostPathSettings, EbsSettings, StorageSettings, ZfsLocalPvSettings

ZFS_LOCALPV_REPO = "https://openebs.github.io/zfs-localpv"
SNAPSHOT_API_VERSION = "snapshot.storage.k8s.io/v1"


class VolumeSnapshotClass(pulumi.CustomResource):
    """snapshot.storage.k8s.io/v1 VolumeSnapshotClass.

    Its fields (driver, deletionPolicy, parameters) sit at the top level, not under `spec`, which
    `kubernetes.apiextensions.CustomResource` cannot express; this registers the same resource
    type with the Kubernetes provider directly.
    """

    metadata: pulumi.Output[Any]

    def __init__(
        self,
        resource_name: str,
        *,
        metadata: pulumi.Input[dict[str, Any]],
        driver: str,
        deletion_policy: str,
        parameters: Optional[dict[str, str]] = None,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        props: dict[str, Any] = {
            "apiVersion": SNAPSHOT_API_VERSION,
            "kind": "VolumeSnapshotClass",
            "metadata": metadata,
            "driver": driver,
            "deletionPolicy": deletion_policy,
        }
        if parameters:
            props["parameters"] = parameters
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(version=k8s_utilities.get_version()))
        super().__init__(f"kubernetes:{SNAPSHOT_API_VERSION}:VolumeSnapshotClass", resource_name, props, opts)


@dataclass(frozen=True)
class SnapshotStorageArgs:
    settings: StorageSettings


class SnapshotStorage(pulumi.ComponentResource):
    """The StorageClass and VolumeSnapshotClass stateful workloads use, and the driver behind them."""

    #: Name of the StorageClass (resolves once it exists).
    storage_class_name: pulumi.Output[str]
    #: Name of the VolumeSnapshotClass (resolves once it, and the CRD it needs, exist).
    snapshot_class_name: pulumi.Output[str]
    #: The CSI driver name (provisioner and snapshot driver).
    csi_driver: str

    def __init__(
        self,
        name: str,
        args: SnapshotStorageArgs,
        provider: k8s.Provider,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        spec = args.settings
        super().__init__("scaleplane:storage:SnapshotStorage", name, None, opts)
        self.csi_driver = spec.csi_driver

        driver_install: list[pulumi.Resource] = []
        if spec.driver == "zfs-localpv":
            driver_install.append(self._zfs_localpv(name, spec, provider))
        elif spec.driver == "csi-hostpath":
            hostpath = CsiHostPath(
                f"{name}-csi-hostpath",
                CsiHostPathArgs(spec.csi_host_path or CsiHostPathSettings()),
                provider,
                opts=pulumi.ResourceOptions(parent=self),
            )
            driver_install.extend(hostpath.ready)

        self.storage_class: Optional[k8s.storage.v1.StorageClass] = None
        if spec.existing_storage_class is None:
            self.storage_class = k8s.storage.v1.StorageClass(
                f"{name}-class",
                metadata={
                    "name": spec.storage_class_name,
                    "labels": dict(MANAGED_BY),
                    "annotations": {"storageclass.kubernetes.io/is-default-class": str(spec.default_class).lower()},
                },
                provisioner=spec.csi_driver,
                parameters=self._class_parameters(spec),
                reclaim_policy="Retain",
                volume_binding_mode="WaitForFirstConsumer",
                allow_volume_expansion=True,
                allowed_topologies=self._allowed_topologies(spec),
                opts=child_opts(self, provider, depends_on=driver_install),
            )
        self.snapshot_class = VolumeSnapshotClass(
            f"{name}-snapshot-class",
            metadata={"name": spec.snapshot_class_name, "labels": dict(MANAGED_BY)},
            driver=spec.csi_driver,
            deletion_policy="Retain",
            # The CRD comes from the chart (zfs-localpv), the driver component (csi-hostpath) or
            # the cluster's snapshot add-on (EKS).
            opts=child_opts(self, provider, depends_on=driver_install),
        )
        self.snapshot_class_name = self.snapshot_class.metadata.apply(lambda m: m["name"])
        if self.storage_class is not None:
            self.storage_class_name = self.storage_class.metadata.apply(lambda m: m["name"])
        else:
            # The cluster's own class: resolved once this component's dependencies (the cluster) are
            # in place, so volumes that name it are created after it.
            existing = spec.existing_storage_class
            self.storage_class_name = self.snapshot_class.metadata.apply(lambda _: existing)
        self.register_outputs(
            {
                "storageClassName": self.storage_class_name,
                "snapshotClassName": self.snapshot_class_name,
                "csiDriver": self.csi_driver,
            }
        )

    @staticmethod
    def _class_parameters(spec: StorageSettings) -> dict[str, str]:
        if spec.driver == "ebs":
            ebs = spec.ebs or EbsSettings()
            parameters = {
                "type": ebs.volume_type,
                "encrypted": "true",
                "csi.storage.k8s.io/fstype": ebs.fs_type,
            }
            if ebs.kms_key_id:
                parameters["kmsKeyId"] = ebs.kms_key_id
            return parameters
        if spec.driver == "csi-hostpath":
            # The hostpath driver takes no StorageClass parameters (filesystem volumes by default).
            return {}
        zfs = spec.zfs_local_pv or ZfsLocalPvSettings()
        return {"poolname": zfs.pool_name, "fstype": zfs.fs_type}

    @staticmethod
    def _allowed_topologies(spec: StorageSettings) -> Optional[list[dict[str, Any]]]:
        zfs = spec.zfs_local_pv
        if spec.driver != "zfs-localpv" or zfs is None or zfs.nodes is None:
            return None
        return [{"matchLabelExpressions": [{"key": "kubernetes.io/hostname", "values": list(zfs.nodes)}]}]

    def _zfs_localpv(self, name: str, spec: StorageSettings, provider: k8s.Provider) -> k8s.helm.v3.Release:
        zfs = spec.zfs_local_pv or ZfsLocalPvSettings()
        self.chart_values = zfs_localpv_values(spec)
        # Privileged: the node agent runs privileged with the host's root and /dev mounted, to run
        # zfs on the node. Retained like the release: deleting the namespace would delete the
        # ZFSVolume objects in it, and the node agent destroys the dataset of every deleted one.
        ns = namespace(
            f"{name}-zfs-namespace", zfs.namespace, self, provider, pod_security="privileged", holds_volumes=True
        )
        # Nothing connects to the driver over the network (kubelet talks to it over unix sockets).
        deny = deny_ingress(f"{name}-zfs-deny-ingress", ns.metadata["name"], self, provider)
        # helm.v3.Release, not v4.Chart: the chart's CRDs (ZFSVolume, ZFSSnapshot, ...) are templates,
        # and a v4 Chart's objects are separate Pulumi resources that retainOnDelete on the Chart is
        # not carried to (pulumi/pulumi-kubernetes#3065): a destroy would delete the CRDs, so every
        # ZFSVolume, so every dataset. A retained Release is never uninstalled. What the pack cannot
        # see inside it is declared in `zfs_localpv_workloads`.
        return k8s.helm.v3.Release(
            f"{name}-zfs-localpv",
            name="zfs-localpv",
            chart="zfs-localpv",
            version=zfs.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=ZFS_LOCALPV_REPO),
            namespace=ns.metadata["name"],
            # Roll back a failed install/upgrade instead of leaving a half-installed CSI driver.
            atomic=True,
            cleanup_on_fail=True,
            values=self.chart_values,
            # Never uninstalled by Pulumi: that would delete the ZFSVolume objects, and the node
            # agent destroys the dataset of every deleted one (the retained volumes' data).
            opts=child_opts(self, provider, depends_on=[deny], retain_on_delete=True),
        )


def zfs_localpv_values(spec: StorageSettings) -> dict[str, Any]:
    """Chart values for zfs-localpv; every path exists in the pinned chart's values.yaml and is read
    by one of its templates. No resources: the chart declares zfsController.resources and
    zfsNode.resources, but neither templates/zfs-controller.yaml nor zfs-node.yaml reads them
    (v2.6.2), so setting them does nothing; see `zfs_localpv_workloads`."""
    zfs = spec.zfs_local_pv or ZfsLocalPvSettings()
    values: dict[str, Any] = {
        # The chart reports installs to OpenEBS's analytics by default.
        "analytics": {"enabled": False},
        "crds": {"csi": {"volumeSnapshots": {"enabled": zfs.install_snapshot_crds}}},
    }
    if zfs.kubelet_dir:
        values["zfsNode"] = {"kubeletDir": zfs.kubelet_dir}
    return values


#: The containers zfs-localpv v2.6.2 runs (container names from values.yaml's defaults). Its
#: templates render no `resources` and no probes for any of them and offer no value that would:
#: the policy config exempts the two workloads by name (policy/README.md says why).
ZFS_CONTROLLER_CONTAINERS = (
    "csi-resizer",
    "csi-snapshotter",
    "snapshot-controller",
    "csi-provisioner",
    "openebs-zfs-plugin",
)
ZFS_NODE_CONTAINERS = ("csi-node-driver-registrar", "openebs-zfs-plugin")


@declares("zfs-localpv")
def zfs_localpv_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """What the zfs-localpv chart runs: the controller Deployment and the node DaemonSet, with
    neither resources nor probes (no template reads any value for them)."""
    name = fullname(release, "zfs-localpv")
    return [
        ChartWorkload("Deployment", f"{name}-controller", [ChartContainer(c) for c in ZFS_CONTROLLER_CONTAINERS]),
        ChartWorkload("DaemonSet", f"{name}-node", [ChartContainer(c) for c in ZFS_NODE_CONTAINERS]),
    ]
