"""Which cluster a stack deploys to. Each cluster kind has its own section.

`existingCluster` reaches a cluster someone else runs; `eks` and `kops` describe one this program
creates on AWS, with node groups (EKS) or instance groups (kops) that carry the playbook's node
labels (environment=production / environment=development) and taints.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, Optional, Self

from pydantic import AfterValidator, Field, model_validator

from settings.base import settings
from settings.placement import LabelKey, LabelValue

ClusterKind = Literal["existing", "eks", "kops"]

_DIRECTION = "(north|south|east|west|central|northeast|northwest|southeast|southwest)"
#: An AWS region such as us-east-1, eu-central-1 or us-gov-west-1.
Region = Annotated[str, Field(pattern=rf"^[a-z]{{2}}(-gov|-iso[a-z]?)?-{_DIRECTION}-[1-9]$")]
#: An availability zone of a region: the region's name plus a letter (us-east-1a).
Zone = Annotated[str, Field(pattern=rf"^[a-z]{{2}}(-gov|-iso[a-z]?)?-{_DIRECTION}-[1-9][a-z]$")]
#: A DNS name of two or more labels (dev.scaleplane.k8s.local).
_DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$"
#: An EC2 instance type (t3.medium, m7i.large, c7g.xlarge).
InstanceType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")]
#: A node-group / instance-group name: a DNS label.
GroupName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
#: An IAM role or user ARN.
PrincipalArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[\w+=,.@/-]+$")]
#: A chart or add-on version; None where the setting allows it means "the provider's default".
Version = Annotated[str, Field(pattern=r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")]


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a network in CIDR notation: {error}") from None
    return str(network)


Cidr = Annotated[str, AfterValidator(_cidr)]

#: Label prefixes the kubelet may not set on its own node (NodeRestriction admission), except the
#: node.kubernetes.io/ and kubelet.kubernetes.io/ namespaces that are meant for it.
_RESTRICTED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io")
_ALLOWED_LABEL_PREFIXES = ("node.kubernetes.io/", "kubelet.kubernetes.io/")


def is_arm(instance_type: str) -> bool:
    """Graviton families carry a `g` after the generation digit (t4g, m7g, c7gn, r8gd)."""
    family = instance_type.split(".", 1)[0]
    digits = [i for i, ch in enumerate(family) if ch.isdigit()]
    return bool(digits) and family[digits[-1] + 1 : digits[-1] + 2] == "g"


def _unique(values: tuple[str, ...], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is listed twice")
        seen.add(value)


@settings
class ExistingClusterSettings:
    """An existing cluster reached through a kubeconfig file (kind, k3d, minikube, ...)."""

    #: The kubeconfig context to use. Required so a stack never deploys to whatever is current.
    context: Annotated[str, Field(min_length=1)]
    #: Path of the kubeconfig file; `~` is expanded. None: the KUBECONFIG default chain.
    kubeconfig: Optional[str] = None
    #: StorageClasses the cluster already has that workloads may name (kind's `standard`); a
    #: storageClass neither listed here nor provided by scaleplane:storage is refused.
    storage_classes: tuple[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")], ...] = ()


@settings
class Taint:
    """A node taint: only pods that tolerate it are scheduled (or keep running) on the node."""

    key: LabelKey
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
    value: LabelValue = ""

    def render(self) -> str:
        """The kubectl / kops form: `key=value:Effect` (or `key:Effect` without a value)."""
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


@settings
class NodeGroupSettings:
    """A group of identical worker nodes: an EKS managed node group or a kops instance group."""

    name: GroupName
    #: EC2 instance types; the first is the primary one (kops: machineType, the rest mixed in).
    instance_types: Annotated[tuple[InstanceType, ...], Field(min_length=1)]
    min_size: Annotated[int, Field(ge=0, le=1000)]
    #: Nodes at creation; afterwards cluster-autoscaler owns the count (kops starts at minSize).
    desired_size: Annotated[int, Field(ge=0, le=1000)]
    max_size: Annotated[int, Field(ge=1, le=1000)]
    #: Kubernetes labels every node of the group carries (the playbook's environment=production).
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    #: Zones the group spans; empty: every zone of the cluster. Each must be a cluster zone.
    zones: tuple[Zone, ...] = ()
    #: Root volume size (GiB), gp3 and encrypted.
    disk_size_gib: Annotated[int, Field(ge=20, le=16384)] = 20
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"sizes must satisfy minSize <= desiredSize <= maxSize; got minSize {self.min_size}, "
                f"desiredSize {self.desired_size}, maxSize {self.max_size}"
            )
        _unique(self.instance_types, "instance type")
        if len({is_arm(t) for t in self.instance_types}) > 1:
            raise ValueError(
                f"instanceTypes {list(self.instance_types)} mix Arm (Graviton) and x86 types; "
                "every node of a group boots the same image, so use one architecture per group"
            )
        _unique(self.zones, "zone")
        for key in self.labels:
            prefix, _, _ = key.rpartition("/")
            restricted = any(prefix == d or prefix.endswith("." + d) for d in _RESTRICTED_LABEL_DOMAINS)
            if restricted and not key.startswith(_ALLOWED_LABEL_PREFIXES):
                raise ValueError(
                    f"label {key!r} is in a namespace the kubelet may not set on its node; "
                    f"use an unprefixed key or one under {', '.join(_ALLOWED_LABEL_PREFIXES)}"
                )
        _unique(tuple(f"{t.key}:{t.effect}" for t in self.taints), "taint")
        return self


def _groups_fit_zones(groups: tuple[NodeGroupSettings, ...], zones: tuple[str, ...], what: str) -> None:
    _unique(tuple(group.name for group in groups), f"{what} name")
    for group in groups:
        stray = [zone for zone in group.zones if zone not in zones]
        if stray:
            raise ValueError(f"{what} {group.name!r} uses zones {stray} that are not among zones {list(zones)}")


def _zones_in_region(zones: tuple[str, ...], region: str) -> None:
    _unique(zones, "zone")
    stray = [zone for zone in zones if zone[:-1] != region]
    if stray:
        raise ValueError(f"zones {stray} are not in region {region}")


@settings
class ClusterAutoscalerSettings:
    """cluster-autoscaler from its Helm chart, finding the node groups by their discovery tags."""

    enabled: bool = True
    #: The chart version (kubernetes/autoscaler's cluster-autoscaler chart).
    chart_version: Version = "9.59.0"
    #: Image tag; its minor must match the cluster's Kubernetes minor. None: v<kubernetesVersion>.0.
    image_tag: Optional[Version] = None
    #: How a node group is picked to grow: least-waste, most-pods, random or priority. (`price`
    #: works only on GCE, GKE and Equinix Metal, per the cluster-autoscaler FAQ; this cluster is AWS.)
    expander: Literal["least-waste", "most-pods", "random", "priority", "price"] = "least-waste"

    @model_validator(mode="after")
    def _expander_on_aws(self) -> Self:
        if self.expander == "price":
            raise ValueError(
                "expander 'price' works only on GCE, GKE and Equinix Metal (cluster-autoscaler FAQ); on AWS "
                "use least-waste, most-pods, random or priority"
            )
        return self


@settings
class LoadBalancerControllerSettings:
    """The AWS Load Balancer Controller (installed when the stack's balancer is aws-nlb)."""

    chart_version: Version = "3.5.0"
    replicas: Annotated[int, Field(ge=1, le=10)] = 2


@settings
class EksAddonVersions:
    """EKS managed add-on versions. None: the default version EKS picks for the cluster version."""

    vpc_cni: Optional[Version] = None
    kube_proxy: Optional[Version] = None
    coredns: Optional[Version] = None
    ebs_csi_driver: Optional[Version] = None
    snapshot_controller: Optional[Version] = None


#: Longest node-group name: EKS allows 63 characters, the name prefix gets "-" and a 26-character suffix.
EKS_NODE_GROUP_NAME_MAX = 63 - 27


@settings
class EksSettings:
    """An EKS cluster in its own VPC, with managed node groups."""

    node_groups: Annotated[tuple[NodeGroupSettings, ...], Field(min_length=1)]
    #: Physical cluster name. None: scaleplane-<environment>.
    name: Optional[Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9_-]{0,99}$")]] = None
    region: Region = "us-east-1"
    #: At least two zones (EKS requires subnets in two); the VPC has a public and a private subnet in each.
    zones: Annotated[tuple[Zone, ...], Field(min_length=2, max_length=4)] = ("us-east-1a", "us-east-1b")
    vpc_cidr: Cidr = "10.0.0.0/16"
    #: One NAT gateway per zone (survives a zone outage) or a single shared one (cheaper).
    nat_gateways: Literal["per-zone", "single"] = "per-zone"
    #: Where the API server is reachable: only inside the VPC (the default: nothing on the
    #: internet reaches it), from the internet, or both.
    endpoint_access: Literal["public", "private", "public-and-private"] = "private"
    #: CIDRs allowed to reach the public endpoint: required with a public endpoint, and only
    #: the user knows them (their CI runners' and admins' egress ranges). Production refuses
    #: 0.0.0.0/0.
    public_access_cidrs: tuple[Cidr, ...] = ()
    #: IAM principals granted cluster-admin through EKS access entries (besides the creator).
    admin_principal_arns: tuple[PrincipalArn, ...] = ()
    addons: EksAddonVersions = EksAddonVersions()
    cluster_autoscaler: ClusterAutoscalerSettings = ClusterAutoscalerSettings()
    load_balancer_controller: LoadBalancerControllerSettings = LoadBalancerControllerSettings()
    #: AWS tags on every resource that takes tags.
    tags: dict[Annotated[str, Field(min_length=1, max_length=128)], Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _zones_in_region(self.zones, self.region)
        _groups_fit_zones(self.node_groups, self.zones, "node group")
        for group in self.node_groups:
            # EKS names a group <name>-<26-character unique suffix>, at most 63 characters, so
            # that a replacement group can be created before the old one is deleted.
            if len(group.name) > EKS_NODE_GROUP_NAME_MAX:
                raise ValueError(
                    f"node group name {group.name!r} is longer than {EKS_NODE_GROUP_NAME_MAX} characters "
                    "(EKS adds a 27-character unique suffix, up to 63 in all)"
                )
        prefix = ipaddress.ip_network(self.vpc_cidr).prefixlen
        if not 16 <= prefix <= 20:
            raise ValueError(f"vpcCidr {self.vpc_cidr} must be a /16 to /20 so each zone gets two subnets")
        _unique(self.public_access_cidrs, "publicAccessCidrs entry")
        if self.endpoint_access == "private" and self.public_access_cidrs:
            raise ValueError("publicAccessCidrs has no effect when endpointAccess is private")
        if self.endpoint_access != "private" and not self.public_access_cidrs:
            raise ValueError(
                f"endpointAccess is {self.endpoint_access!r} but publicAccessCidrs is empty: list the "
                "egress CIDRs of the CI runners and admins that reach the API, or use endpointAccess private"
            )
        return self


@settings
class KopsControlPlaneSettings:
    """The control plane: one instance group per zone listed (1 zone, or 3 for an HA etcd)."""

    machine_type: InstanceType = "t3.medium"
    #: Zones with one control-plane node each; empty: the cluster's first zone (the playbook's one node).
    zones: tuple[Zone, ...] = ()

    @model_validator(mode="after")
    def _odd_quorum(self) -> Self:
        _unique(self.zones, "zone")
        if len(self.zones) not in (0, 1, 3):
            raise ValueError(f"{len(self.zones)} control-plane zones: etcd needs 1 or 3 members")
        return self


@settings
class KopsSettings:
    """A kops cluster on EC2, its state in an S3 bucket this program creates and protects."""

    #: The cluster's name, a DNS name (dev.scaleplane.k8s.local).
    name: Annotated[
        str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$", max_length=63)
    ]
    #: S3 bucket that holds kops' state (created here, versioned, encrypted, never public).
    state_store_bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    #: Worker instance groups; the playbook's "nodes" plus the environment groups.
    instance_groups: Annotated[tuple[NodeGroupSettings, ...], Field(min_length=1)]
    region: Region = "us-east-1"
    zones: Annotated[tuple[Zone, ...], Field(min_length=1, max_length=6)] = ("us-east-1a",)
    #: The kops executable: a path or a name on PATH.
    kops_binary: Annotated[str, Field(min_length=1)] = "kops"
    #: The kubectl executable that drains a removed instance group's nodes: a path or a name on PATH.
    kubectl_binary: Annotated[str, Field(min_length=1)] = "kubectl"
    #: Patch release of the stack's kubernetesVersion that kops installs (1.34 + 2 -> 1.34.2).
    kubernetes_patch: Annotated[int, Field(ge=0, le=99)] = 0
    #: How the API is found: no DNS (through the API load balancer), or a Route 53 zone.
    dns: Literal["none", "public", "private"] = "none"
    #: Route 53 hosted zone (name or id) for dns public/private.
    dns_zone: Optional[str] = None
    networking: Literal["cilium", "calico", "amazonvpc", "kubenet"] = "cilium"
    network_cidr: Cidr = "172.20.0.0/16"
    topology: Literal["public", "private"] = "public"
    #: CIDRs allowed to reach the API through its load balancer. Empty (the default): nothing
    #: outside the VPC does, and the API load balancer is internal. Only the user knows these
    #: ranges (their CI runners' and admins' egress); production refuses 0.0.0.0/0.
    kubernetes_api_access: tuple[Cidr, ...] = ()
    #: CIDRs allowed to SSH to the nodes. Empty (the default): none (no key pair is installed
    #: either); production refuses 0.0.0.0/0.
    ssh_access: tuple[Cidr, ...] = ()
    control_plane: KopsControlPlaneSettings = KopsControlPlaneSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _zones_in_region(self.zones, self.region)
        _groups_fit_zones(self.instance_groups, self.zones, "instance group")
        stray = [zone for zone in self.control_plane.zones if zone not in self.zones]
        if stray:
            raise ValueError(f"controlPlane zones {stray} are not among zones {list(self.zones)}")
        if self.dns == "none" and self.dns_zone is not None:
            raise ValueError("dnsZone is set but dns is 'none'")
        if self.dns != "none" and self.dns_zone is None:
            raise ValueError(f"dns is {self.dns!r}: set dnsZone to the Route 53 zone")
        names = {group.name for group in self.instance_groups}
        clash = names & {f"control-plane-{zone}" for zone in self.zones}
        if clash:
            raise ValueError(f"instance group names {sorted(clash)} are reserved for the control plane")
        prefix = ipaddress.ip_network(self.network_cidr).prefixlen
        if not 16 <= prefix <= 20:
            raise ValueError(f"networkCidr {self.network_cidr} must be a /16 to /20")
        _unique(self.kubernetes_api_access, "kubernetesApiAccess entry")
        _unique(self.ssh_access, "sshAccess entry")
        return self


def world_open(cidrs: tuple[str, ...]) -> list[str]:
    """The CIDRs among `cidrs` that let in the whole internet (0.0.0.0/0, ::/0)."""
    return [cidr for cidr in cidrs if ipaddress.ip_network(cidr).prefixlen == 0]


def refuse_world_open_in_production(section: str, lists: dict[str, tuple[str, ...]]) -> None:
    """A production stack never opens a control plane to the whole internet."""
    for key, cidrs in lists.items():
        open_ = world_open(cidrs)
        if open_:
            raise ValueError(
                f"scaleplane:{section}.{key} contains {', '.join(open_)} in a production stack: list the "
                "CIDRs that need access (CI runners' and admins' egress ranges) instead"
                + (", or use endpointAccess private" if key == "publicAccessCidrs" else "")
            )
