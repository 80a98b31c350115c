"""A kops cluster on EC2, driven by the kops CLI through pulumi-command.

kops keeps a cluster's desired state in an S3 "state store" and reconciles AWS to it. This
component creates that bucket (versioned, encrypted, never public, and kept when the stack is
destroyed), renders the cluster and instance-group specs from settings (the playbook: us-east-1,
one control-plane node, worker group "nodes" plus environment groups labelled
environment=production / environment=development), and wires kops to Pulumi's lifecycle:

- create: `kops replace --force` (writes the specs), the `encryptionconfig` secret (a generated
  key that encrypts Secrets at rest) unless it exists, `kops update cluster --yes`, then waits
  for `kops validate cluster`;
- update (the specs changed): `kops replace`, `kops update cluster --yes`; for each worker group
  settings no longer list, its nodes cordoned and drained (`kubectl drain`) before `kops delete
  instancegroup` (which does not drain); then `kops rolling-update cluster --yes` so running
  nodes pick up the change;
- delete (`pulumi destroy`, or the cluster leaving the program): `kops delete cluster --yes`.

Each run ends by printing a kubeconfig that uses kops' own credential plugin (no long-lived admin
certificate is stored); it becomes the stack's (secret) kubeconfig and Kubernetes provider.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_aws as aws
import pulumi_command as command
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from settings.cluster import KopsSettings, NodeGroupSettings

KOPS_API_VERSION = "kops.k8s.io/v1alpha2"
#: The node label kops sets to its instance group's name (and the specs set explicitly).
INSTANCE_GROUP_LABEL = "kops.k8s.io/instancegroup"
#: How long draining a removed instance group may take before the update fails (and it stays).
DRAIN_TIMEOUT = "15m"
#: The environment variable that hands the (secret) encryption config to the kops scripts.
ENCRYPTION_CONFIG_ENV = "SCALEPLANE_ENCRYPTION_CONFIG"


class KopsBinaryNotFoundError(RuntimeError):
    """The kops executable named in settings is not installed or not on PATH."""


@dataclass(frozen=True)
class KopsClusterArgs:
    kops: KopsSettings
    #: Kubernetes minor version (1.34); the patch comes from kops.kubernetes_patch.
    kubernetes_version: str
    #: Let kops install the AWS Load Balancer Controller (the stack's balancer is aws-nlb).
    load_balancer_controller: bool = False


def find_kops(binary: str) -> str:
    """The kops executable's absolute path, or a KopsBinaryNotFoundError naming the setting to fix."""
    found = shutil.which(binary)
    if found is None:
        raise KopsBinaryNotFoundError(
            f"kops binary {binary!r} was not found (scaleplane:kops.kopsBinary); install kops "
            "(https://kops.sigs.k8s.io/getting_started/install/) or set kopsBinary to its path"
        )
    return found


def cluster_identifier(kops: KopsSettings) -> str:
    """The Kubernetes provider's identity: known from settings, so never unknown in a preview."""
    return f"kops:{kops.name}"


def _control_plane_zones(kops: KopsSettings) -> tuple[str, ...]:
    return kops.control_plane.zones or kops.zones[:1]


def _subnet_cidrs(kops: KopsSettings) -> list[dict[str, str]]:
    """kops subnets: one per zone (public topology) or private + utility per zone."""
    network = ipaddress.ip_network(kops.network_cidr)
    blocks = list(network.subnets(new_prefix=network.prefixlen + 3))
    subnets: list[dict[str, str]] = []
    for index, zone in enumerate(kops.zones):
        if kops.topology == "public":
            subnets.append({"name": zone, "zone": zone, "type": "Public", "cidr": str(blocks[index])})
        else:
            # Private nodes, with a small "utility" subnet for NAT gateways and balancers.
            subnets.append({"name": zone, "zone": zone, "type": "Private", "cidr": str(blocks[index])})
            utility = list(blocks[6].subnets(new_prefix=blocks[6].prefixlen + 3))[index]
            subnets.append({"name": f"utility-{zone}", "zone": zone, "type": "Utility", "cidr": str(utility)})
    return subnets


def cluster_spec(args: KopsClusterArgs) -> dict[str, Any]:
    """The kops Cluster object for these settings."""
    kops = args.kops
    control_zones = _control_plane_zones(kops)
    etcd_members = [
        {"name": zone[-1], "instanceGroup": f"control-plane-{zone}", "encryptedVolume": True} for zone in control_zones
    ]
    spec: dict[str, Any] = {
        # A public API load balancer only for the CIDRs settings list; none listed: an internal
        # one, reached from inside the VPC (nodes reach the API either way).
        "api": {"loadBalancer": {"type": "Public" if kops.kubernetes_api_access else "Internal", "class": "Network"}},
        "authorization": {"rbac": {}},
        "channel": "stable",
        "cloudProvider": "aws",
        "configBase": f"s3://{kops.state_store_bucket}/{kops.name}",
        "kubernetesVersion": f"{args.kubernetes_version}.{kops.kubernetes_patch}",
        "etcdClusters": [
            {"name": "main", "etcdMembers": etcd_members, "cpuRequest": "200m", "memoryRequest": "100Mi"},
            {"name": "events", "etcdMembers": etcd_members, "cpuRequest": "100m", "memoryRequest": "100Mi"},
        ],
        # Secrets encrypted at rest in etcd. kops (1.34, as today) needs the key as its
        # `encryptionconfig` secret in the state store (`kops update cluster` refuses without
        # it); the scripts create it from ENCRYPTION_CONFIG_ENV before the first update.
        "encryptionConfig": True,
        "iam": {"allowContainerRegistry": True, "legacy": False},
        # No anonymous kubelet access; Metrics Server (and `kubectl top`, the HPA) reaches the
        # kubelet with its service-account token, which the kubelet checks by webhook.
        "kubelet": {"anonymousAuth": False, "authenticationTokenWebhook": True, "authorizationMode": "Webhook"},
        "kubernetesApiAccess": list(kops.kubernetes_api_access),
        "sshAccess": list(kops.ssh_access),
        # No SSH key pair: nodes are reached through the API (kubectl debug), not SSH.
        "sshKeyName": "",
        "networkCIDR": kops.network_cidr,
        "nonMasqueradeCIDR": "100.64.0.0/10",
        "networking": {kops.networking: {}},
        "subnets": _subnet_cidrs(kops),
        "topology": {"dns": {"type": {"none": "None", "public": "Public", "private": "Private"}[kops.dns]}},
        # kops-managed add-ons: EBS CSI with the CSI snapshot controller (which needs
        # cert-manager for its webhook), and cluster-autoscaler discovering the instance groups.
        "cloudConfig": {"awsEBSCSIDriver": {"enabled": True}},
        "certManager": {"enabled": True},
        "snapshotController": {"enabled": True},
        "clusterAutoscaler": {"enabled": True, "balanceSimilarNodeGroups": True},
    }
    if kops.dns_zone is not None:
        spec["dnsZone"] = kops.dns_zone
    if args.load_balancer_controller:
        spec["awsLoadBalancerController"] = {"enabled": True}
    return {"apiVersion": KOPS_API_VERSION, "kind": "Cluster", "metadata": {"name": kops.name}, "spec": spec}


def _instance_group(kops: KopsSettings, name: str, role: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": KOPS_API_VERSION,
        "kind": "InstanceGroup",
        "metadata": {"name": name, "labels": {"kops.k8s.io/cluster": kops.name}},
        "spec": {"role": role, **spec},
    }


def instance_group_specs(args: KopsClusterArgs) -> list[dict[str, Any]]:
    """One control-plane group per control-plane zone, then the worker groups from settings."""
    kops = args.kops
    groups = [
        _instance_group(
            kops,
            f"control-plane-{zone}",
            "ControlPlane",
            {
                "machineType": kops.control_plane.machine_type,
                "minSize": 1,
                "maxSize": 1,
                "subnets": [zone],
                "nodeLabels": {"kops.k8s.io/instancegroup": f"control-plane-{zone}"},
                # IMDSv2 only; control-plane pods on the host network need a second hop.
                "instanceMetadata": {"httpTokens": "required", "httpPutResponseHopLimit": 3},
            },
        )
        for zone in _control_plane_zones(kops)
    ]
    groups.extend(_worker_group(kops, group) for group in kops.instance_groups)
    return groups


def _worker_group(kops: KopsSettings, group: NodeGroupSettings) -> dict[str, Any]:
    zones = group.zones or kops.zones
    spec: dict[str, Any] = {
        "machineType": group.instance_types[0],
        "minSize": group.min_size,
        "maxSize": group.max_size,
        "subnets": list(zones),
        # v1alpha2 spells the root volume as flat fields (the nested `rootVolume` is v1alpha3).
        "rootVolumeSize": group.disk_size_gib,
        "rootVolumeType": "gp3",
        "rootVolumeEncryption": True,
        "nodeLabels": {**group.labels, INSTANCE_GROUP_LABEL: group.name},
        "taints": [taint.render() for taint in group.taints],
        "instanceMetadata": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
        # cluster-autoscaler finds the group by these tags on its Auto Scaling group.
        "cloudLabels": {
            "k8s.io/cluster-autoscaler/enabled": "",
            f"k8s.io/cluster-autoscaler/{kops.name}": "",
        },
    }
    if len(group.instance_types) > 1 or group.capacity_type == "SPOT":
        spec["mixedInstancesPolicy"] = {
            "instances": list(group.instance_types),
            "onDemandAboveBase": 0 if group.capacity_type == "SPOT" else 100,
            "spotAllocationStrategy": "price-capacity-optimized",
        }
    return _instance_group(kops, group.name, "Node", spec)


def encryption_config(key_base64: str) -> str:
    """The kube-apiserver EncryptionConfiguration kops installs: Secrets sealed with `key_base64`.

    secretbox (XSalsa20-Poly1305) is the strongest local-key provider Kubernetes offers (aescbc is
    weak against padding oracles, aesgcm needs rotating every 200k writes). identity comes last
    so Secrets written before encryption was turned on stay readable until they are rewritten.
    """
    return yaml.safe_dump(
        {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [
                {
                    "resources": ["secrets"],
                    "providers": [{"secretbox": {"keys": [{"name": "key1", "secret": key_base64}]}}, {"identity": {}}],
                }
            ],
        },
        sort_keys=False,
    )


def _ensure_encryption_secret(kops: str, cluster: str) -> str:
    """Store the encryption config as kops' `encryptionconfig` secret unless one exists.

    Never replaced (no --force): a different key would leave every Secret sealed with the old
    one unreadable. If the lookup fails for any other reason, the create refuses an existing
    secret and the script stops.
    """
    return (
        f"{kops} get secrets encryptionconfig --name {cluster} >/dev/null 2>&1 || "
        f"printf '%s' \"${ENCRYPTION_CONFIG_ENV}\" | {kops} create secret encryptionconfig --name {cluster} -f -"
    )


def render_specs(args: KopsClusterArgs) -> str:
    """The multi-document YAML `kops replace -f -` reads."""
    return yaml.safe_dump_all([cluster_spec(args), *instance_group_specs(args)], sort_keys=False)


def _prune_worker_groups(kops: str, kubectl: str, cluster: str, keep: list[str]) -> str:
    """Drain, then delete, the worker instance groups that settings no longer list.

    `kops replace` only creates and updates objects, so a group removed from settings would keep
    running. `kops delete instancegroup` terminates the group's instances without draining them
    (kops' own source says so: "TODO make this drain and validate the ig?"), so the group's nodes
    are first cordoned together (evicted pods must not land on a sibling about to go) and then
    drained through the eviction API, which honours PodDisruptionBudgets. A drain that cannot
    finish (a PDB that never allows it, a bare pod, the timeout) fails the update and the group
    stays. A group with no nodes (scaled to zero) has nothing to drain. Control-plane groups are
    never pruned (etcd members live on them). Commands in the loop read /dev/null, so none of them
    can swallow the list of groups the loop reads.
    """
    wanted = " ".join(keep)
    selector = f'"{INSTANCE_GROUP_LABEL}=$group"'
    return (
        f"{kops} get instancegroups --name {cluster} | awk 'NR > 1 && $2 == \"Node\" {{print $1}}' | "
        f'while read -r group; do case " {wanted} " in *" $group "*) ;; '
        f"*) if ! command -v {kubectl} >/dev/null 2>&1; then printf 'kubectl binary %s not found: "
        f"install kubectl or set scaleplane:kops.kubectlBinary\\n' {kubectl} >&2; exit 127; fi; "
        f'nodes="$({kubectl} get nodes -l {selector} -o name </dev/null)" || exit 1; '
        f'if [ -n "$nodes" ]; then {kubectl} cordon -l {selector} </dev/null && '
        f"{kubectl} drain -l {selector} --ignore-daemonsets --delete-emptydir-data --timeout={DRAIN_TIMEOUT} "
        f"</dev/null || exit 1; fi; "
        f'{kops} delete instancegroup "$group" --name {cluster} --yes </dev/null || exit 1 ;; esac; done'
    )


def _script(kops_binary: str, cluster_name: str, steps: list[str], then: tuple[str, ...] = ()) -> str:
    """A bash script that checks the binary and runs kops, logging to stderr.

    With `then` steps, a kubeconfig using kops' credential plugin is exported first (those steps
    talk to the cluster: validate, rolling-update) and printed last: stdout is only the kubeconfig.
    """
    kops = shlex.quote(kops_binary)
    name = shlex.quote(cluster_name)
    lines = [
        "set -euo pipefail",
        f"if ! command -v {kops} >/dev/null 2>&1; then",
        f"  printf 'kops binary %s not found: install kops or set scaleplane:kops.kopsBinary\\n' {kops} >&2",
        "  exit 127",
        "fi",
        # The exported kubeconfig calls `kops helpers kubectl-auth`: make this kops the one on PATH.
        f'export PATH="$(dirname "$(command -v {kops})"):$PATH"',
        # kops writes kubeconfig contexts as a side effect: keep them out of the operator's file.
        'export KUBECONFIG="$(mktemp)"',
        "trap 'rm -f \"$KUBECONFIG\"' EXIT",
    ]
    lines += [f"{step} >&2" for step in steps]
    if then:
        lines.append(f'{kops} export kubeconfig {name} --auth-plugin --kubeconfig "$KUBECONFIG" >&2')
        lines += [f"{step} >&2" for step in then]
        lines.append('cat "$KUBECONFIG"')
    return "\n".join(lines) + "\n"


class KopsCluster(pulumi.ComponentResource):
    """A kops cluster whose state store, specs and lifecycle are managed by Pulumi."""

    provider: k8s.Provider
    name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    #: kops clusters here do not publish a service-account issuer (no IRSA): always None.
    oidc_issuer: pulumi.Output[Optional[str]]
    kubeconfig: pulumi.Output[str]
    state_store: aws.s3.Bucket

    def __init__(self, name: str, args: KopsClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        kops = args.kops
        if not args.kubernetes_version:
            raise ValueError("KopsClusterArgs.kubernetes_version must name a Kubernetes minor version")
        if not pulumi.runtime.is_dry_run():
            # `pulumi up` runs kops: fail before touching anything if it is missing. A preview
            # only warns, so the plan can be reviewed on a machine without kops.
            find_kops(kops.kops_binary)
        elif shutil.which(kops.kops_binary) is None:
            pulumi.log.warn(
                f"kops binary {kops.kops_binary!r} not found (scaleplane:kops.kopsBinary); `pulumi up` will fail"
            )
        super().__init__("scaleplane:cluster:KopsCluster", name, None, opts)
        # The region comes from settings, not from ambient `aws:region` config.
        aws_provider = aws.Provider(f"{name}-aws", region=kops.region, opts=pulumi.ResourceOptions(parent=self))
        # The bucket and its settings are kept by `pulumi destroy` (retain_on_delete), not
        # `protect`ed: a protected resource makes the whole destroy fail before `kops delete
        # cluster` runs. The settings are retained too: deleting them would suspend versioning
        # and lift the public-access block on the bucket that stays behind.
        mine = pulumi.ResourceOptions(parent=self, provider=aws_provider, retain_on_delete=True)
        tags = {"scaleplane:cluster": kops.name}

        # --- the state store: kops' source of truth, so it outlives any `pulumi destroy` ----
        self.state_store = aws.s3.Bucket(
            f"{name}-state",
            bucket=kops.state_store_bucket,
            force_destroy=False,
            tags=tags,
            opts=mine,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-state-versioning",
            bucket=self.state_store.id,
            versioning_configuration={"status": "Enabled"},
            opts=mine,
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-state-encryption",
            bucket=self.state_store.id,
            rules=[
                {"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}, "bucket_key_enabled": True}
            ],
            opts=mine,
        )
        private = aws.s3.BucketPublicAccessBlock(
            f"{name}-state-private",
            bucket=self.state_store.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=mine,
        )
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-state-ownership",
            bucket=self.state_store.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=mine,
        )

        # --- the key that encrypts Secrets at rest (generated once, kept in the state) -----
        encryption_key = random.RandomBytes(f"{name}-secrets-key", length=32, opts=pulumi.ResourceOptions(parent=self))

        # --- kops, wired to create / update / delete ---------------------------------------
        binary = kops.kops_binary
        cluster_name = kops.name
        quoted = shlex.quote(cluster_name)
        kops_cmd = shlex.quote(binary)
        replace = f"{kops_cmd} replace -f - --force"
        update = f"{kops_cmd} update cluster --name {quoted} --yes"
        validate = f"{kops_cmd} validate cluster --name {quoted} --wait 20m"
        rolling = f"{kops_cmd} rolling-update cluster --name {quoted} --yes"
        delete = f"{kops_cmd} delete cluster --name {quoted} --yes"
        kubectl = shlex.quote(kops.kubectl_binary)
        encrypt = _ensure_encryption_secret(kops_cmd, quoted)
        prune = _prune_worker_groups(kops_cmd, kubectl, quoted, [group.name for group in kops.instance_groups])
        cluster = command.local.Command(
            f"{name}-kops",
            create=_script(binary, cluster_name, [replace, encrypt, update], then=(validate,)),
            # The prune drains through the cluster's API: it runs once the kubeconfig is exported.
            update=_script(binary, cluster_name, [replace, encrypt, update], then=(prune, rolling, validate)),
            delete=_script(binary, cluster_name, [delete]),
            interpreter=["/bin/bash", "-c"],
            stdin=render_specs(args),
            environment={
                "KOPS_STATE_STORE": pulumi.Output.concat("s3://", self.state_store.bucket),
                ENCRYPTION_CONFIG_ENV: pulumi.Output.secret(encryption_key.base64.apply(encryption_config)),
            },
            # stdout is the kubeconfig: never log it, and keep it secret in the state.
            logging="stderr",
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[versioning, encryption, private, ownership],
                additional_secret_outputs=["stdout"],
                custom_timeouts=pulumi.CustomTimeouts(create="40m", update="90m", delete="30m"),
            ),
        )

        self.name = pulumi.Output.from_input(cluster_name)
        # The kubeconfig's credential plugin runs `kops` from the Kubernetes provider's PATH,
        # which only the scripts above extend: point it at the configured binary.
        self.kubeconfig = pulumi.Output.secret(cluster.stdout.apply(lambda text: _plugin_runs(text, binary)))
        self.endpoint = pulumi.Output.unsecret(cluster.stdout.apply(_server_of))
        self.oidc_issuer = pulumi.Output.from_input(None)
        #: The cluster with its add-ons (the AWS Load Balancer Controller when asked for) comes up
        #: with this command: LoadBalancer Services wait for it.
        self.load_balancer_ready: list[pulumi.Resource] = [cluster]
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            # The kubeconfig is the command's stdout, unknown in the preview of any change to the
            # specs; without an identifier the provider would then plan to replace every object
            # on the cluster. The cluster's name is its identity: only a new name is a new cluster.
            cluster_identifier=cluster_identifier(kops),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(
            {
                "name": self.name,
                "endpoint": self.endpoint,
                "oidcIssuer": self.oidc_issuer,
                "kubeconfig": self.kubeconfig,
                "stateStore": self.state_store.bucket,
            }
        )


def _plugin_runs(kubeconfig: str, kops_binary: str) -> str:
    """The kubeconfig with kops' credential plugin run as `kops_binary` (absolute when a path)."""
    command = os.path.abspath(os.path.expanduser(kops_binary)) if "/" in kops_binary else kops_binary
    document = yaml.safe_load(kubeconfig) or {}
    changed = False
    for user in document.get("users") or []:
        plugin = (user.get("user") or {}).get("exec") or {}
        if plugin.get("command") == "kops" and command != "kops":
            plugin["command"] = command
            changed = True
    return yaml.safe_dump(document, sort_keys=False) if changed else kubeconfig


def _server_of(kubeconfig: str) -> str:
    """The API server URL of a kubeconfig's first cluster."""
    document = yaml.safe_load(kubeconfig) or {}
    clusters = document.get("clusters") or []
    if not clusters:
        raise ValueError("kops printed a kubeconfig without clusters")
    return str(clusters[0]["cluster"]["server"])
