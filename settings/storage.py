"""Snapshot-capable storage: which CSI driver backs stateful volumes, and its classes.

`scaleplane:storage` chooses the driver per cluster kind: the AWS EBS CSI driver on EKS or kops
(the cluster component installs it and the snapshot controller: EKS add-ons, or kops'
snapshotController; this section only adds the StorageClass and VolumeSnapshotClass); on a local
cluster the CSI hostpath driver with the external-snapshotter's snapshot controller and CRDs
(`csi-hostpath`: needs nothing on the host, so a stock `kind create cluster` will do), or OpenEBS
LocalPV-ZFS for hosts that have a ZFS pool (installed from its Helm chart, which also brings the
snapshot CRDs and the snapshot controller).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Self

from pydantic import Field, model_validator

from settings.base import settings

DnsName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
StorageDriver = Literal["ebs", "csi-hostpath", "zfs-localpv"]

#: CSI driver names, as the StorageClass provisioner and the VolumeSnapshotClass driver.
CSI_DRIVERS: dict[str, str] = {
    "ebs": "ebs.csi.aws.com",
    "csi-hostpath": "hostpath.csi.k8s.io",
    "zfs-localpv": "zfs.csi.openebs.io",
}


@settings
class EbsSettings:
    """EBS volume parameters of the StorageClass (aws-ebs-csi-driver `parameters`)."""

    #: EBS volume type: gp3 is the general-purpose default (3000 IOPS / 125 MiB/s baseline).
    volume_type: Literal["gp3", "gp2", "io1", "io2", "st1", "sc1"] = "gp3"
    #: Encrypt every volume (and so every snapshot). Always on: there is no reason to turn it off.
    encrypted: Literal[True] = True
    #: A customer-managed KMS key ARN; None: the account's default aws/ebs key.
    kms_key_id: Optional[Annotated[str, Field(pattern=r"^arn:aws[-a-z]*:kms:[a-z0-9-]+:[0-9]{12}:key/[-a-f0-9]+$")]] = (
        None
    )
    fs_type: Literal["ext4", "xfs"] = "ext4"


@settings
class ZfsLocalPvSettings:
    """OpenEBS LocalPV-ZFS, from its Helm chart (https://openebs.github.io/zfs-localpv)."""

    #: Published chart version (the pinned reference is the v2.6.2 tag; see SOURCES.md).
    chart_version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")] = "2.6.2"
    namespace: DnsName = "openebs"
    #: The ZFS pool every node that runs stateful pods must have (`zpool create <poolName> ...`).
    pool_name: Annotated[str, Field(pattern=r"^[A-Za-z][-A-Za-z0-9_.:]{0,254}$")] = "zfspv-pool"
    #: zfs: datasets (native snapshots and clones); ext4/xfs/btrfs: zvols formatted with that fs.
    fs_type: Literal["zfs", "ext4", "xfs", "btrfs"] = "zfs"
    #: Install the CSI VolumeSnapshot CRDs with the chart. Turn off only where the cluster
    #: already ships them (the chart's snapshot controller is installed either way).
    install_snapshot_crds: bool = True
    #: The kubelet's root directory, where it differs from /var/lib/kubelet (microk8s, k0s).
    kubelet_dir: Optional[Annotated[str, Field(pattern=r"^/.*/$")]] = None
    #: Nodes that have the pool; None: all nodes (allowedTopologies is left unset).
    nodes: Optional[Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]] = None


@settings
class CsiHostPathSettings:
    """The CSI hostpath driver (kubernetes-csi/csi-driver-host-path v1.18.0) and the snapshot
    controller (kubernetes-csi/external-snapshotter v8.6.0), for a local single-worker cluster."""

    #: Where the driver runs (privileged: it mounts volumes on its node).
    namespace: DnsName = "csi-hostpath"
    #: Where the snapshot controller runs (restricted: it only talks to the API server).
    snapshot_controller_namespace: DnsName = "snapshot-controller"
    #: Directory on the node (inside kind's node container) that holds the volumes' data.
    data_dir: Annotated[str, Field(pattern=r"^/[-A-Za-z0-9_./]*/$")] = "/var/lib/csi-hostpath-data/"
    #: Install the VolumeSnapshot CRDs (a stock kind cluster has none). Turn off only where the
    #: cluster already ships them.
    install_snapshot_crds: bool = True


@settings
class StorageSettings:
    """The snapshot-capable StorageClass and VolumeSnapshotClass stateful workloads use."""

    driver: StorageDriver
    #: Name of the StorageClass volumes are provisioned from (created here).
    storage_class_name: DnsName = "scaleplane-snapshot"
    #: Use this StorageClass, which the cluster component already creates (EKS: `gp3`, on the
    #: EBS CSI driver), instead of creating one. It must provision with the same CSI driver.
    existing_storage_class: Optional[DnsName] = None
    #: Name of the VolumeSnapshotClass snapshots are taken with.
    snapshot_class_name: DnsName = "scaleplane-retain"
    #: Make the StorageClass the cluster default (annotation storageclass.kubernetes.io/is-default-class).
    default_class: bool = False
    ebs: Optional[EbsSettings] = None
    csi_host_path: Optional[CsiHostPathSettings] = None
    zfs_local_pv: Optional[ZfsLocalPvSettings] = None

    @model_validator(mode="after")
    def _driver_section(self) -> Self:
        if self.driver != "ebs" and self.ebs is not None:
            raise ValueError(f"ebs is set but driver is '{self.driver}'")
        if self.driver != "zfs-localpv" and self.zfs_local_pv is not None:
            raise ValueError(f"zfsLocalPv is set but driver is '{self.driver}'")
        if self.driver != "csi-hostpath" and self.csi_host_path is not None:
            raise ValueError(f"csiHostPath is set but driver is '{self.driver}'")
        if self.existing_storage_class is not None:
            if self.ebs is not None:
                raise ValueError(
                    f"ebs sets the parameters of a StorageClass created here, but existingStorageClass "
                    f"'{self.existing_storage_class}' is used instead: set one or the other"
                )
            if self.default_class:
                raise ValueError("defaultClass applies to a StorageClass created here, not to existingStorageClass")
        return self

    @property
    def csi_driver(self) -> str:
        return CSI_DRIVERS[self.driver]

    @property
    def provided_storage_class(self) -> str:
        """The StorageClass this section gives volumes: the one it creates, or existingStorageClass."""
        return self.existing_storage_class or self.storage_class_name

    @property
    def created_namespace(self) -> Optional[str]:
        """The Namespace this section's chart creates (LocalPV-ZFS), if any."""
        if self.driver == "zfs-localpv":
            return (self.zfs_local_pv or ZfsLocalPvSettings()).namespace
        return None
