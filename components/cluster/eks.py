"""An EKS cluster built from pulumi-aws resources alone (no pulumi-eks, so no Node.js runtime).

What it creates, in order:
- a VPC across the configured zones: a public and a private subnet per zone (tagged so the AWS
  cloud controller and the AWS Load Balancer Controller find them for internet-facing and
  internal balancers), an internet gateway and NAT gateways for the private subnets;
- IAM roles for the control plane and the nodes, a KMS key that encrypts Secrets in etcd, and
  the control plane's CloudWatch log group (kept 90 days, deleted with the stack);
- the cluster itself, authenticated by EKS access entries (no aws-auth ConfigMap);
- the networking add-ons (VPC CNI with its own IRSA role, kube-proxy) before any node, since nodes
  only become Ready with a CNI; `bootstrapSelfManagedAddons` is off so EKS installs no unmanaged
  copies we would have to fight over;
- managed node groups, each from a launch template that requires IMDSv2, with the Kubernetes
  labels and taints of its settings (environment=production / environment=development);
- the OIDC provider for IRSA; CoreDNS, the EBS CSI driver (with its IRSA role) and the CSI
  snapshot controller as add-ons once nodes exist; a default encrypted gp3 StorageClass;
- cluster-autoscaler (helm.v4.Chart, IRSA) and, when the stack's balancer is aws-nlb, the AWS
  Load Balancer Controller (helm.v4.Chart, IRSA, without its Service mutator webhook).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.chart_workloads import (
    ChartContainer,
    ChartRelease,
    ChartWorkload,
    declares,
    fullname,
    given,
    http_probe,
)
from components.cluster import iam
from components.kube import child_opts
from settings.cluster import EksSettings, NodeGroupSettings, is_arm

#: EKS spells taint effects in its own API's form.
_EKS_TAINT_EFFECT = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}

CLUSTER_AUTOSCALER_SERVICE_ACCOUNT = ("kube-system", "cluster-autoscaler")
LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT = ("kube-system", "aws-load-balancer-controller")
EBS_CSI_SERVICE_ACCOUNT = ("kube-system", "ebs-csi-controller-sa")
VPC_CNI_SERVICE_ACCOUNT = ("kube-system", "aws-node")
#: The chart's webhook Service: <namePrefix>-webhook-service, namePrefix being the chart name
#: without "-controller".
LOAD_BALANCER_CONTROLLER_WEBHOOK_SERVICE = "aws-load-balancer-webhook-service"
#: The webhook certificates last as long as the chart's own (genCA ... 3650 days); an `up` in
#: the last 30 days renews them.
WEBHOOK_CERT_VALIDITY_HOURS = 3650 * 24
WEBHOOK_CERT_EARLY_RENEWAL_HOURS = 30 * 24

#: Days the control plane's api/audit/authenticator logs are kept.
CONTROL_PLANE_LOG_RETENTION_DAYS = 90

CLUSTER_AUTOSCALER_REPO = "https://kubernetes.github.io/autoscaler"
EKS_CHARTS_REPO = "https://aws.github.io/eks-charts"


@dataclass(frozen=True)
class EksClusterArgs:
    #: The cluster's physical name (also in subnet and autoscaler discovery tags).
    cluster_name: str
    #: Kubernetes minor version (1.34).
    kubernetes_version: str
    eks: EksSettings
    #: Install the AWS Load Balancer Controller (the stack's balancer is aws-nlb).
    load_balancer_controller: bool = False


def cluster_autoscaler_image_tag(args: EksClusterArgs) -> str:
    """cluster-autoscaler must run the release of the cluster's own Kubernetes minor."""
    tag = args.eks.cluster_autoscaler.image_tag or f"v{args.kubernetes_version}.0"
    minor = ".".join(tag.removeprefix("v").split(".")[:2])
    if minor != args.kubernetes_version:
        raise ValueError(
            f"eks.clusterAutoscaler.imageTag {tag} is for Kubernetes {minor}, but the cluster runs "
            f"{args.kubernetes_version}; cluster-autoscaler must match the cluster's minor version"
        )
    return tag


def cluster_identifier(cluster_name: str, region: str) -> str:
    """The Kubernetes provider's identity: known from settings, so never unknown in a preview."""
    return f"eks:{region}:{cluster_name}"


def _subnet_cidrs(vpc_cidr: str, zones: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """Private and public subnet CIDRs per zone: the VPC cut in eight, private first."""
    network = ipaddress.ip_network(vpc_cidr)
    blocks = list(network.subnets(new_prefix=network.prefixlen + 3))
    private = {zone: str(blocks[i]) for i, zone in enumerate(zones)}
    public = {zone: str(blocks[4 + i]) for i, zone in enumerate(zones)}
    return private, public


class EksCluster(pulumi.ComponentResource):
    """An EKS cluster with its VPC, node groups, IRSA, storage and autoscaling add-ons."""

    provider: k8s.Provider
    name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: EksClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        if not args.cluster_name:
            raise ValueError("EksClusterArgs.cluster_name must not be empty")
        if not args.eks.node_groups:
            raise ValueError("EksClusterArgs.eks.node_groups needs at least one node group")
        autoscaler_tag = cluster_autoscaler_image_tag(args)
        super().__init__("scaleplane:cluster:EksCluster", name, None, opts)
        self._name = name
        self._args = args
        eks = args.eks
        cluster_name = args.cluster_name
        tags = {**eks.tags, "scaleplane:cluster": cluster_name}
        # The region comes from settings, not from ambient `aws:region` config.
        self._aws = aws.Provider(f"{name}-aws", region=eks.region, opts=pulumi.ResourceOptions(parent=self))
        mine = self._aws_opts()

        # --- network -------------------------------------------------------------------------
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=eks.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": cluster_name},
            opts=mine,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": cluster_name}, opts=mine)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public-routes",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            tags={**tags, "Name": f"{cluster_name}-public"},
            opts=mine,
        )
        private_cidrs, public_cidrs = _subnet_cidrs(eks.vpc_cidr, eks.zones)
        shared = {f"kubernetes.io/cluster/{cluster_name}": "shared"}
        public_subnets: dict[str, aws.ec2.Subnet] = {}
        private_subnets: dict[str, aws.ec2.Subnet] = {}
        for zone in eks.zones:
            public_subnets[zone] = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=vpc.id,
                availability_zone=zone,
                cidr_block=public_cidrs[zone],
                map_public_ip_on_launch=False,
                # Internet-facing balancers go to subnets tagged role/elb.
                tags={**tags, **shared, "Name": f"{cluster_name}-public-{zone}", "kubernetes.io/role/elb": "1"},
                opts=mine,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}", subnet_id=public_subnets[zone].id, route_table_id=public_routes.id, opts=mine
            )
            private_subnets[zone] = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                availability_zone=zone,
                cidr_block=private_cidrs[zone],
                # Internal balancers go to subnets tagged role/internal-elb.
                tags={
                    **tags,
                    **shared,
                    "Name": f"{cluster_name}-private-{zone}",
                    "kubernetes.io/role/internal-elb": "1",
                },
                opts=mine,
            )
        nat_zones = eks.zones if eks.nat_gateways == "per-zone" else eks.zones[:1]
        nats: dict[str, aws.ec2.NatGateway] = {}
        for zone in nat_zones:
            address = aws.ec2.Eip(
                f"{name}-nat-{zone}", domain="vpc", tags={**tags, "Name": f"{cluster_name}-nat-{zone}"}, opts=mine
            )
            nats[zone] = aws.ec2.NatGateway(
                f"{name}-nat-{zone}",
                allocation_id=address.id,
                subnet_id=public_subnets[zone].id,
                tags={**tags, "Name": f"{cluster_name}-{zone}"},
                opts=self._aws_opts(depends_on=[gateway]),
            )
        for zone in eks.zones:
            nat = nats.get(zone, nats[nat_zones[0]])
            routes = aws.ec2.RouteTable(
                f"{name}-private-routes-{zone}",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags={**tags, "Name": f"{cluster_name}-private-{zone}"},
                opts=mine,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}", subnet_id=private_subnets[zone].id, route_table_id=routes.id, opts=mine
            )

        # --- control plane -------------------------------------------------------------------
        cluster_role = aws.iam.Role(
            f"{name}-cluster-role",
            assume_role_policy=iam.service_trust_policy("eks.amazonaws.com"),
            description=f"EKS control plane of {cluster_name}",
            tags=tags,
            opts=mine,
        )
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            role=cluster_role.name,
            policy_arn=iam.managed_policy_arn(eks.region, "AmazonEKSClusterPolicy"),
            opts=mine,
        )
        secrets_key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"Encrypts Kubernetes Secrets of {cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=mine,
        )
        key_use = aws.iam.RolePolicy(
            f"{name}-cluster-kms",
            role=cluster_role.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                            "Resource": secrets_key.arn,
                        }
                    ],
                }
            ),
            opts=mine,
        )
        # EKS writes control-plane logs to this group; left to EKS it would be created with no
        # expiry and outlive `pulumi destroy`. Created first, it is ours: bounded and deleted.
        control_plane_logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/eks/{cluster_name}/cluster",
            retention_in_days=CONTROL_PLANE_LOG_RETENTION_DAYS,
            tags=tags,
            opts=mine,
        )
        cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=cluster_name,
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config={
                "subnet_ids": [s.id for s in private_subnets.values()] + [s.id for s in public_subnets.values()],
                "endpoint_private_access": eks.endpoint_access != "public",
                "endpoint_public_access": eks.endpoint_access != "private",
                "public_access_cidrs": list(eks.public_access_cidrs) if eks.endpoint_access != "private" else None,
            },
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            # EKS would otherwise install unmanaged CoreDNS/kube-proxy/VPC CNI; we install all three
            # as managed add-ons below so their versions and configuration are ours.
            bootstrap_self_managed_addons=False,
            encryption_config={"provider": {"key_arn": secrets_key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            upgrade_policy={"support_type": "STANDARD"},
            tags=tags,
            opts=self._aws_opts(depends_on=[cluster_policy, key_use, control_plane_logs]),
        )
        for index, principal in enumerate(eks.admin_principal_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{index}",
                cluster_name=cluster.name,
                principal_arn=principal,
                type="STANDARD",
                tags=tags,
                opts=mine,
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{index}",
                cluster_name=cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn=f"arn:{iam.partition(eks.region)}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                access_scope={"type": "cluster"},
                opts=mine,
            )

        issuer = cluster.identities.apply(lambda identities: identities[0].oidcs[0].issuer)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=[iam.STS_AUDIENCE],
            tags=tags,
            opts=mine,
        )
        self._oidc = oidc
        self._issuer = issuer

        # --- networking add-ons, before any node ---------------------------------------------
        cni_role = self._irsa_role("vpc-cni", VPC_CNI_SERVICE_ACCOUNT, managed=["AmazonEKS_CNI_Policy"])
        vpc_cni = self._addon(cluster, "vpc-cni", eks.addons.vpc_cni, role=cni_role)
        kube_proxy = self._addon(cluster, "kube-proxy", eks.addons.kube_proxy)

        # --- nodes ---------------------------------------------------------------------------
        node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=iam.service_trust_policy("ec2.amazonaws.com"),
            description=f"Worker nodes of {cluster_name}",
            tags=tags,
            opts=mine,
        )
        # No CNI policy here: the VPC CNI runs with its own IRSA role.
        node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}",
                role=node_role.name,
                policy_arn=iam.managed_policy_arn(eks.region, policy),
                opts=mine,
            )
            for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly")
        ]
        node_groups = [
            self._node_group(group, cluster, node_role, private_subnets, tags, [*node_policies, vpc_cni, kube_proxy])
            for group in eks.node_groups
        ]

        # --- add-ons that run as pods, once nodes exist ----------------------------------------
        coredns = self._addon(cluster, "coredns", eks.addons.coredns, depends_on=node_groups)
        ebs_role = self._irsa_role(
            "ebs-csi", EBS_CSI_SERVICE_ACCOUNT, managed=["service-role/AmazonEBSCSIDriverPolicy"]
        )
        ebs_csi = self._addon(
            cluster, "aws-ebs-csi-driver", eks.addons.ebs_csi_driver, role=ebs_role, depends_on=node_groups
        )
        snapshots = self._addon(cluster, "snapshot-controller", eks.addons.snapshot_controller, depends_on=node_groups)

        self.name = cluster.name
        self.endpoint = cluster.endpoint
        self.oidc_issuer = issuer
        self.kubeconfig = pulumi.Output.secret(
            kubeconfig_for(cluster.name, eks.region, cluster.endpoint, cluster.certificate_authority.data)
        )
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            # The kubeconfig carries the endpoint and CA, outputs that are unknown whenever the
            # cluster resource changes in a preview (a version upgrade, a logging change); without
            # an identifier the provider would then plan to replace every object on the cluster.
            # Region and name, both from settings, are the cluster's identity (changing either
            # replaces the EKS cluster itself), never an output that can be unknown.
            cluster_identifier=cluster_identifier(cluster_name, eks.region),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*node_groups, coredns]),
        )

        # The default StorageClass: encrypted gp3 through the EBS CSI driver, bound where the pod
        # lands (so the volume is in the pod's zone). Retain: deleting a PVC never deletes data.
        k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"},
            reclaim_policy="Retain",
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=child_opts(self, self.provider, depends_on=[ebs_csi, snapshots]),
        )

        ready: list[pulumi.Resource] = [*node_groups, coredns]
        if eks.cluster_autoscaler.enabled:
            self._cluster_autoscaler(autoscaler_tag, ready)
        #: What LoadBalancer Services wait for: the controller that provisions their NLB (nothing
        #: else serves the service.k8s.aws/nlb class, so a Service created earlier would only
        #: spend its await timeout waiting for an address). No webhook of the controller's
        #: refuses other objects while it starts (see load_balancer_controller_values).
        self.load_balancer_ready: list[pulumi.Resource] = []
        if args.load_balancer_controller:
            self.load_balancer_ready.append(self._load_balancer_controller(vpc.id, ready))

        self.register_outputs(
            {
                "name": self.name,
                "endpoint": self.endpoint,
                "oidcIssuer": self.oidc_issuer,
                "kubeconfig": self.kubeconfig,
            }
        )

    def _aws_opts(self, **extra: Any) -> pulumi.ResourceOptions:
        """Options of a child AWS resource: this component as parent, the component's AWS provider."""
        return pulumi.ResourceOptions(parent=self, provider=self._aws, **extra)

    def _irsa_role(
        self,
        role: str,
        service_account: tuple[str, str],
        *,
        managed: tuple[str, ...] | list[str] = (),
        inline: Optional[str] = None,
    ) -> aws.iam.Role:
        """An IAM role that exactly one Kubernetes service account can assume through IRSA."""
        namespace, account = service_account
        iam_role = aws.iam.Role(
            f"{self._name}-{role}-irsa",
            assume_role_policy=iam.irsa_trust_policy(self._oidc.arn, self._issuer, namespace, account),
            description=f"IRSA role of {namespace}/{account} in {self._args.cluster_name}",
            tags={**self._args.eks.tags, "scaleplane:cluster": self._args.cluster_name},
            opts=self._aws_opts(),
        )
        for policy in managed:
            aws.iam.RolePolicyAttachment(
                f"{self._name}-{role}-irsa-{policy.rsplit('/', 1)[-1]}",
                role=iam_role.name,
                policy_arn=iam.managed_policy_arn(self._args.eks.region, policy),
                opts=self._aws_opts(),
            )
        if inline is not None:
            aws.iam.RolePolicy(
                f"{self._name}-{role}-irsa",
                role=iam_role.id,
                policy=inline,
                opts=self._aws_opts(),
            )
        return iam_role

    def _addon(
        self,
        cluster: aws.eks.Cluster,
        addon: str,
        version: Optional[str],
        *,
        role: Optional[aws.iam.Role] = None,
        depends_on: Optional[list[pulumi.Resource]] = None,
    ) -> aws.eks.Addon:
        return aws.eks.Addon(
            f"{self._name}-{addon}",
            cluster_name=cluster.name,
            addon_name=addon,
            addon_version=version,
            service_account_role_arn=role.arn if role is not None else None,
            # Nothing else manages these (self-managed bootstrap is off): take ownership on
            # create, keep any field someone changed on purpose on update.
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="PRESERVE",
            tags={**self._args.eks.tags, "scaleplane:cluster": self._args.cluster_name},
            opts=self._aws_opts(depends_on=list(depends_on or [])),
        )

    def _node_group(
        self,
        group: NodeGroupSettings,
        cluster: aws.eks.Cluster,
        node_role: aws.iam.Role,
        private_subnets: dict[str, aws.ec2.Subnet],
        tags: dict[str, str],
        depends_on: list[pulumi.Resource],
    ) -> aws.eks.NodeGroup:
        """A managed node group in the private subnets of its zones, launched with IMDSv2 only."""
        name = f"{self._name}-{group.name}"
        cluster_name = self._args.cluster_name
        node_name = f"{cluster_name}-{group.name}"
        template = aws.ec2.LaunchTemplate(
            f"{name}-template",
            description=f"Nodes of {cluster_name}/{group.name}",
            # IMDSv2 only (session tokens required). A hop limit of 1 keeps pods off the node's
            # instance role: add-ons get AWS credentials through IRSA, and region/VPC via values.
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_size": group.disk_size_gib,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            tag_specifications=[
                {"resource_type": "instance", "tags": {**tags, "Name": node_name}},
                {"resource_type": "volume", "tags": {**tags, "Name": node_name}},
            ],
            update_default_version=True,
            tags=tags,
            opts=self._aws_opts(),
        )
        zones = group.zones or self._args.eks.zones
        return aws.eks.NodeGroup(
            name,
            cluster_name=cluster.name,
            # A prefix, not a fixed name: changing instance types, zones or capacity type replaces
            # the group, and Pulumi creates the new group before deleting the old one (a fixed
            # name would collide). EKS drains the old nodes as it deletes them.
            node_group_name_prefix=f"{group.name}-",
            node_role_arn=node_role.arn,
            subnet_ids=[private_subnets[zone].id for zone in zones],
            instance_types=list(group.instance_types),
            capacity_type=group.capacity_type,
            # Settings guarantee one architecture per group.
            ami_type="AL2023_ARM_64_STANDARD" if is_arm(group.instance_types[0]) else "AL2023_x86_64_STANDARD",
            scaling_config={
                "min_size": group.min_size,
                "desired_size": group.desired_size,
                "max_size": group.max_size,
            },
            labels=dict(group.labels),
            taints=[
                {"key": t.key, "value": t.value or None, "effect": _EKS_TAINT_EFFECT[t.effect]} for t in group.taints
            ],
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            update_config={"max_unavailable": 1},
            # cluster-autoscaler's auto-discovery tags. Node-group tags do not reach the Auto
            # Scaling group: EKS tags the group's ASG with these two itself (the autoscaler's
            # resize permission is conditioned on the `owned` one), and the autoscaler reads a
            # group's labels and taints through eks:DescribeNodegroup to scale it up from zero.
            tags={
                **tags,
                "k8s.io/cluster-autoscaler/enabled": "true",
                f"k8s.io/cluster-autoscaler/{cluster_name}": "owned",
            },
            opts=self._aws_opts(
                depends_on=depends_on,
                # The autoscaler changes the desired size; don't fight it on every update.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

    def _cluster_autoscaler(self, image_tag: str, ready: list[pulumi.Resource]) -> k8s.helm.v4.Chart:
        settings = self._args.eks.cluster_autoscaler
        namespace, account = CLUSTER_AUTOSCALER_SERVICE_ACCOUNT
        role = self._irsa_role(
            "cluster-autoscaler",
            CLUSTER_AUTOSCALER_SERVICE_ACCOUNT,
            inline=iam.cluster_autoscaler_policy(self._args.cluster_name),
        )
        # helm.v4.Chart: the chart has no hooks and no lookups, so its objects are rendered here
        # and a real `pulumi preview --policy-pack policy` checks them. It lives in kube-system,
        # which EKS owns: this program neither creates nor labels that namespace.
        return k8s.helm.v4.Chart(
            f"{self._name}-cluster-autoscaler",
            name="cluster-autoscaler",
            chart="cluster-autoscaler",
            version=settings.chart_version,
            namespace=namespace,
            repository_opts={"repo": CLUSTER_AUTOSCALER_REPO},
            values=cluster_autoscaler_values(self._args, image_tag, role.arn),
            opts=child_opts(self, self.provider, depends_on=ready),
        )

    def _load_balancer_controller(self, vpc_id: pulumi.Output[str], ready: list[pulumi.Resource]) -> k8s.helm.v4.Chart:
        settings = self._args.eks.load_balancer_controller
        namespace, _ = LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT
        role = self._irsa_role(
            "load-balancer-controller",
            LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT,
            inline=iam.load_balancer_controller_policy(),
        )
        webhook_tls = self._webhook_certificate()
        # helm.v4.Chart: the chart has no hooks; its one `lookup` (reusing the webhook's TLS
        # Secret) is bypassed by passing the certificate in webhookTLS, so the render is the same
        # on every run and a real `pulumi preview --policy-pack policy` checks its objects. Like
        # cluster-autoscaler it lives in kube-system, which this program neither creates nor labels.
        return k8s.helm.v4.Chart(
            f"{self._name}-load-balancer-controller",
            name="aws-load-balancer-controller",
            chart="aws-load-balancer-controller",
            version=settings.chart_version,
            namespace=namespace,
            repository_opts={"repo": EKS_CHARTS_REPO},
            values=load_balancer_controller_values(self._args, vpc_id, role.arn, webhook_tls),
            opts=child_opts(self, self.provider, depends_on=ready),
        )

    def _webhook_certificate(self) -> WebhookTls:
        """The LB controller's webhook serving certificate and its CA (the chart would make new ones per render)."""
        name = f"{self._name}-load-balancer-controller-webhook"
        namespace, _ = LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT
        service = LOAD_BALANCER_CONTROLLER_WEBHOOK_SERVICE
        mine = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=mine)
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject={"common_name": "aws-load-balancer-controller-ca"},
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            validity_period_hours=WEBHOOK_CERT_VALIDITY_HOURS,
            early_renewal_hours=WEBHOOK_CERT_EARLY_RENEWAL_HOURS,
            opts=mine,
        )
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=mine)
        dns_names = [f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]
        request = tls.CertRequest(
            f"{name}-request",
            private_key_pem=key.private_key_pem,
            subject={"common_name": dns_names[1]},
            dns_names=dns_names,
            opts=mine,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            allowed_uses=["server_auth", "digital_signature", "key_encipherment"],
            validity_period_hours=WEBHOOK_CERT_VALIDITY_HOURS,
            early_renewal_hours=WEBHOOK_CERT_EARLY_RENEWAL_HOURS,
            opts=mine,
        )
        return WebhookTls(ca_cert=ca.cert_pem, cert=cert.cert_pem, key=pulumi.Output.secret(key.private_key_pem))


@dataclass(frozen=True)
class WebhookTls:
    """PEM certificate, key and CA the AWS Load Balancer Controller's webhooks serve with."""

    ca_cert: pulumi.Input[str]
    cert: pulumi.Input[str]
    key: pulumi.Input[str]


def cluster_autoscaler_values(args: EksClusterArgs, image_tag: str, role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """The cluster-autoscaler chart's values (keys as in its values.yaml)."""
    namespace, account = CLUSTER_AUTOSCALER_SERVICE_ACCOUNT
    return {
        # The Deployment is kube-system/cluster-autoscaler, the name policy/config exempts from
        # the readiness-probe rule: the chart (9.59.0) templates only a livenessProbe
        # (/health-check on 8085) and has no value for a readiness probe.
        "fullnameOverride": "cluster-autoscaler",
        "cloudProvider": "aws",
        "awsRegion": args.eks.region,
        "autoDiscovery": {"clusterName": args.cluster_name},
        "image": {"tag": image_tag},
        "rbac": {
            "serviceAccount": {
                "create": True,
                "name": account,
                "annotations": {"eks.amazonaws.com/role-arn": role_arn},
            }
        },
        "extraArgs": {
            "expander": args.eks.cluster_autoscaler.expander,
            "balance-similar-node-groups": True,
            "skip-nodes-with-system-pods": False,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "300Mi"}, "limits": {"memory": "600Mi"}},
    }


def load_balancer_controller_values(
    args: EksClusterArgs, vpc_id: pulumi.Input[str], role_arn: pulumi.Input[str], webhook_tls: WebhookTls
) -> dict[str, Any]:
    """The aws-load-balancer-controller chart's values (keys as in its values.yaml)."""
    _, account = LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT
    return {
        "clusterName": args.cluster_name,
        # Given explicitly: with IMDS hop limit 1 the controller cannot look them up.
        "region": args.eks.region,
        "vpcId": vpc_id,
        "replicaCount": args.eks.load_balancer_controller.replicas,
        "serviceAccount": {
            "create": True,
            "name": account,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        # A controller pod without requests runs BestEffort and is evicted first.
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        # Upstream's probes, probed every 15 s: with the default 10 s period their 10 s timeout
        # would let one probe start before the last one timed out.
        **{key: {**probe, "periodSeconds": 15} for key, probe in LOAD_BALANCER_CONTROLLER_PROBES.items()},
        # Off: the Service mutator (mservice.elbv2.k8s.aws) sees every Service CREATE in every
        # namespace and fails closed, so it refuses istiod's, metrics-server's and Percona's
        # Services while the controller starts. It only exists to give LoadBalancer Services
        # without a class this controller's class, and every LoadBalancer Service this program
        # makes already names spec.loadBalancerClass service.k8s.aws/nlb (components/balancer).
        "enableServiceMutatorWebhook": False,
        # Off: the Ingress validator (vingress.elbv2.k8s.aws) sees every Ingress in every namespace
        # and fails closed (Traefik's Ingress for the Linkerd dashboard would be refused while the
        # controller starts). This program runs NLBs only, no ALB Ingress, so it also creates no
        # `alb` IngressClass or IngressClassParams.
        "webhookConfig": {"disableIngressValidation": True},
        "createIngressClassResource": False,
        "ingressClassParams": {"create": False},
        # The chart's other webhooks cannot refuse unrelated objects while it starts: the pod
        # mutators (readiness gates, QUIC server ids, ALB target control) select only namespaces
        # or pods carrying elbv2.k8s.aws/* labels this program never sets, and the readiness-gate
        # one fails open (Ignore, upstream's default, pinned here); the rest validate or mutate
        # only the controller's own TargetGroupBinding / IngressClassParams objects.
        "podMutatorWebhookConfig": {"failurePolicy": "Ignore"},
        # The chart would generate a new CA and certificate on every render (genCA): a perpetual
        # diff, with the webhook's caBundle and the Secret racing on each update.
        "webhookTLS": {"caCert": webhook_tls.ca_cert, "cert": webhook_tls.cert, "key": webhook_tls.key},
    }


#: cluster-autoscaler 9.59.0's templates/deployment.yaml: one container, named
#: <cloudProvider>-cluster-autoscaler, with a fixed livenessProbe and no readinessProbe.
CLUSTER_AUTOSCALER_LIVENESS = http_probe("/health-check", 8085)

#: aws-load-balancer-controller 3.5.0's probe defaults (values.yaml; tests compare them with the
#: pinned chart), rendered as given by templates/deployment.yaml.
LOAD_BALANCER_CONTROLLER_PROBES: dict[str, Any] = {
    "livenessProbe": {
        "failureThreshold": 2,
        "httpGet": {"path": "/healthz", "port": 61779, "scheme": "HTTP"},
        "initialDelaySeconds": 30,
        "timeoutSeconds": 10,
    },
    "readinessProbe": {
        "failureThreshold": 2,
        "httpGet": {"path": "/readyz", "port": 61779, "scheme": "HTTP"},
        "successThreshold": 1,
        "initialDelaySeconds": 10,
        "timeoutSeconds": 10,
    },
}


@declares("cluster-autoscaler")
def cluster_autoscaler_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """What the cluster-autoscaler chart runs: one Deployment with one container."""
    values = release.values
    for key in ("initContainers", "extraContainers"):
        if given(values, key):
            raise ValueError(f"the cluster-autoscaler declaration does not cover {key}")
    name = given(values, "nameOverride") or f"{given(values, 'cloudProvider') or 'aws'}-cluster-autoscaler"
    container = ChartContainer(
        name, resources=given(values, "resources") or None, liveness_probe=CLUSTER_AUTOSCALER_LIVENESS
    )
    return [ChartWorkload("Deployment", fullname(release, name), [container])]


@declares("aws-load-balancer-controller")
def load_balancer_controller_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """What the aws-load-balancer-controller chart runs: one Deployment with one container."""
    values = release.values

    def probe(key: str) -> Any:
        set_here = given(values, key)
        return LOAD_BALANCER_CONTROLLER_PROBES[key] if set_here is None else (set_here or None)

    container = ChartContainer(
        "aws-load-balancer-controller",
        resources=given(values, "resources") or None,
        liveness_probe=probe("livenessProbe"),
        readiness_probe=probe("readinessProbe"),
    )
    return [ChartWorkload("Deployment", fullname(release, "aws-load-balancer-controller"), [container])]


def kubeconfig_for(
    cluster_name: pulumi.Input[str],
    region: str,
    endpoint: pulumi.Input[str],
    certificate_authority: pulumi.Input[str],
) -> pulumi.Output[str]:
    """A kubeconfig that authenticates with `aws eks get-token` (short-lived tokens, no stored key)."""
    return pulumi.Output.json_dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority},
                }
            ],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                cluster_name,
                                "--region",
                                region,
                                "--output",
                                "json",
                            ],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        }
    )
