"""Cross-section checks: what Kubernetes or the cloud would refuse only once two sections meet.

Each section knows what it creates; these checks put them side by side before anything is
deployed: two sections creating one Namespace or one Service, a system namespace the program
would create and label, a StorageClass nothing creates, required placement that no node group
of the stack can satisfy. Every problem names the keys involved, in the config's own words.
`problems()` feeds Settings' validation (errors); `warnings()` covers what the stack cannot know
(an existing cluster's nodes), which `pulumi up` logs and the plan prints.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from settings.base import NAMESPACE, shown
from settings.cluster import NodeGroupSettings, is_arm
from settings.placement import NodeRequirement, Placement, Toleration
from settings.storage import EbsSettings
from settings.workloads import parse_quantity

if TYPE_CHECKING:
    from settings import Settings

#: Namespaces Kubernetes itself owns: creating one fails (it exists), and labelling it would put
#: the program's Pod Security level on the control plane's own pods.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

#: StorageClasses the cluster components create: EKS's encrypted gp3 default
#: (components/cluster/eks.py) and the classes kops' storage-aws add-on installs.
CLUSTER_STORAGE_CLASSES: dict[str, tuple[str, ...]] = {
    "eks": ("gp3",),
    "kops": ("kops-csi-1-21", "kops-ssd-1-17", "gp2"),
    "existing": (),
}

#: Labels every node has whatever its group (values unknown to the stack, e.g. the hostname).
_OPEN_LABELS = ("kubernetes.io/hostname", "eks.amazonaws.com/nodegroup-image", "eks.amazonaws.com/nodegroup")


def _key(section: str, *parts: str) -> str:
    return f"{NAMESPACE}:{section}" + "".join(f".{part}" for part in parts)


@dataclass(frozen=True)
class Created:
    """One object a section creates, with the config key that names it."""

    key: str
    name: str
    namespace: str = ""


def namespaces(config: Settings) -> list[Created]:
    """Every Namespace object the program creates, with the key that names it."""
    created = [Created(_key("todo", "namespace"), config.todo.namespace)]
    if config.minio.enabled:
        created.append(Created(_key("minio", "namespace"), config.minio.namespace))
    if config.database is not None:
        created.append(Created(_key("database", "namespace"), config.database.namespace))
    if config.balancer == "metallb" and config.metallb is not None:
        created.append(Created(_key("metallb", "namespace"), config.metallb.namespace))
    if config.mesh == "istio":
        istio = config.istio_settings
        created.append(Created(_key("istio", "namespace"), istio.namespace))
        created.append(Created(_key("istio", "gateway", "namespace"), istio.gateway.namespace))
    if config.mesh == "linkerd":
        linkerd = config.linkerd_settings
        created.append(Created(_key("linkerd", "namespace"), linkerd.namespace))
        created.append(Created(_key("linkerd", "vizNamespace"), linkerd.viz_namespace))
        created.append(Created(_key("linkerd", "traefik", "namespace"), linkerd.traefik.namespace))
        if linkerd.emojivoto.enabled:
            created.append(Created(_key("linkerd", "emojivoto", "namespace"), linkerd.emojivoto.namespace))
    if config.storage is not None and config.storage.created_namespace is not None:
        created.append(Created(_key("storage", "zfsLocalPv", "namespace"), config.storage.created_namespace))
    return created


def services(config: Settings) -> list[Created]:
    """The Services whose names the stack's config decides, with the key that decides each."""
    todo = config.todo
    # Fixed names first, so a duplicate is reported at the key the user chose.
    created = [
        Created(_key("todo", "mongodb") + " (its Service mongodb)", "mongodb", todo.namespace),
        Created(_key("todo", "name"), todo.name, todo.namespace),
    ]
    if config.minio.enabled:
        for service in ("minio", "minio-headless", "minio-service"):
            created.append(Created(_key("minio") + f" (its Service {service})", service, config.minio.namespace))
    if config.database is not None:
        database = config.database
        created.append(Created(_key("database", "name"), database.name, database.namespace))
        for colour in sorted(database.colours):
            created.append(
                Created(_key("database", "colours", colour), f"{database.name}-{colour}", database.namespace)
            )
    return created


def _duplicates(objects: list[Created], what: str, identity: str) -> Iterator[str]:
    first: dict[tuple[str, str], Created] = {}
    for item in objects:
        seen = first.setdefault((item.namespace, item.name), item)
        if seen is not item:
            where = f" in namespace '{item.namespace}'" if item.namespace else ""
            yield (
                f"{item.key}: '{item.name}' is also {seen.key}; two {what} cannot have one {identity}{where}: "
                "give them different names"
            )


def _storage_classes(config: Settings) -> list[str]:
    """The StorageClasses the stack creates or names as existing."""
    known = list(CLUSTER_STORAGE_CLASSES[config.cluster])
    if config.existing_cluster is not None:
        known += config.existing_cluster.storage_classes
    if config.storage is not None:
        known.append(config.storage.provided_storage_class)
    return known


def _storage_class_problems(config: Settings) -> Iterator[str]:
    known = _storage_classes(config)
    named = [(_key("todo", "mongodb", "storageClass"), config.todo.mongodb.storage_class)]
    if config.minio.enabled:
        named.append((_key("minio", "storageClass"), config.minio.storage_class))
    existing = config.storage.existing_storage_class if config.storage is not None else None
    if existing is not None and config.cluster != "existing":
        # On a cluster this stack creates, an "existing" class can only be one the cluster component made.
        cluster_made = CLUSTER_STORAGE_CLASSES[config.cluster]
        if existing not in cluster_made:
            yield (
                f"{_key('storage', 'existingStorageClass')}: '{existing}' is not a "
                f"StorageClass the {config.cluster} cluster creates ({', '.join(cluster_made)}); the database's "
                "volumes would never bind"
            )
    for key, name in named:
        if name is not None and name not in known:
            choices = ", ".join(f"'{k}'" for k in sorted(set(known))) or "none"
            hint = " (list the cluster's own in existingCluster.storageClasses)" if config.cluster == "existing" else ""
            yield (
                f"{key}: StorageClass '{name}' is neither created by this stack nor named as existing "
                f"(known: {choices}){hint}; the volume would stay Pending"
            )


#: EBS volume sizes per type, in GiB (AWS EBS volume types; the CSI driver rounds a request up to
#: whole GiB, so the minimum only bites for io1/io2 and st1/sc1).
EBS_SIZES_GIB: dict[str, tuple[int, int]] = {
    "gp2": (1, 16_384),
    "gp3": (1, 16_384),
    "io1": (4, 16_384),
    "io2": (4, 65_536),
    "st1": (125, 16_384),
    "sc1": (125, 16_384),
}
#: The EBS type behind each StorageClass a cluster component creates.
_CLUSTER_CLASS_TYPES = {"gp3": "gp3", "kops-csi-1-21": "gp3", "kops-ssd-1-17": "gp2", "gp2": "gp2"}


def _ebs_type(config: Settings, storage_class: Optional[str]) -> Optional[str]:
    """The EBS volume type a claim of this class gets; None where it is not EBS or not known."""
    if config.cluster == "existing":
        return None
    storage = config.storage
    if storage is not None and storage.driver == "ebs" and storage.existing_storage_class is None:
        if storage_class == storage.storage_class_name:
            return (storage.ebs or EbsSettings()).volume_type
    return _CLUSTER_CLASS_TYPES.get(storage_class or "gp3")


def _volume_size_problems(config: Settings) -> Iterator[str]:
    volumes = [
        (_key("todo", "mongodb", "storageSize"), config.todo.mongodb.storage_size, config.todo.mongodb.storage_class)
    ]
    if config.minio.enabled:
        volumes.append((_key("minio", "storageSize"), config.minio.storage_size, config.minio.storage_class))
    if config.database is not None and config.storage is not None:
        volumes.append(
            (_key("database", "storageSize"), config.database.storage_size, config.storage.provided_storage_class)
        )
    for key, size, storage_class in volumes:
        volume_type = _ebs_type(config, storage_class)
        if volume_type is None:
            continue
        low, high = EBS_SIZES_GIB[volume_type]
        gib = math.ceil(parse_quantity(size) / 2**30)
        if not low <= gib <= high:
            yield (
                f"{key}: {size} is outside what EBS makes a {volume_type} volume ({low} GiB to {high // 1024} TiB); "
                "the CSI driver's CreateVolume would fail"
            )


# -- placement -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """What the scheduler sees of a node group's nodes: label values each may carry, and taints."""

    key: str
    name: str
    labels: dict[str, frozenset[str]]
    group: NodeGroupSettings


def _groups(config: Settings) -> list[_Group]:
    if config.eks is not None:
        groups, field, region, zones = config.eks.node_groups, "eks.nodeGroups", config.eks.region, config.eks.zones
    elif config.kops is not None:
        groups, field = config.kops.instance_groups, "kops.instanceGroups"
        region, zones = config.kops.region, config.kops.zones
    else:
        return []
    found = []
    for index, group in enumerate(groups):
        arch = "arm64" if is_arm(group.instance_types[0]) else "amd64"
        group_zones = frozenset(group.zones or zones)
        labels: dict[str, frozenset[str]] = {
            "kubernetes.io/os": frozenset({"linux"}),
            "beta.kubernetes.io/os": frozenset({"linux"}),
            "kubernetes.io/arch": frozenset({arch}),
            "beta.kubernetes.io/arch": frozenset({arch}),
            "node.kubernetes.io/instance-type": frozenset(group.instance_types),
            "beta.kubernetes.io/instance-type": frozenset(group.instance_types),
            "topology.kubernetes.io/zone": group_zones,
            "failure-domain.beta.kubernetes.io/zone": group_zones,
            "topology.kubernetes.io/region": frozenset({region}),
            "failure-domain.beta.kubernetes.io/region": frozenset({region}),
        }
        if config.eks is not None:
            labels["eks.amazonaws.com/capacityType"] = frozenset({group.capacity_type})
        else:
            labels["kops.k8s.io/instancegroup"] = frozenset({group.name})
            labels["node-role.kubernetes.io/node"] = frozenset({""})
        labels.update({key: frozenset({value}) for key, value in group.labels.items()})
        found.append(_Group(f"{NAMESPACE}:{field}[{index}]", group.name, labels, group))
    return found


def _requirement_fails(requirement: NodeRequirement, labels: dict[str, frozenset[str]]) -> Optional[str]:
    """Why no node of a group with these labels meets the requirement (None when one may)."""
    if requirement.key in _OPEN_LABELS:
        return None
    values = labels.get(requirement.key)
    wanted = set(requirement.values)
    op = requirement.operator
    if op == "Exists":
        return None if values is not None else f"no label {requirement.key}"
    if op == "DoesNotExist":
        return None if values is None else f"every node has {requirement.key}"
    if op == "NotIn":
        return None if values is None or values - wanted else f"{requirement.key} is always one of {sorted(wanted)}"
    if values is None:
        return f"no label {requirement.key}"
    if op == "In":
        return None if values & wanted else f"{requirement.key} is {_listed(values)}"
    limit = int(requirement.values[0])
    numbers = [int(v) for v in values if v.lstrip("-").isdigit()]
    if any(n > limit if op == "Gt" else n < limit for n in numbers):
        return None
    return f"{requirement.key} is {_listed(values)}"


def _listed(values: frozenset[str]) -> str:
    return ", ".join(sorted(repr(v) if not v else v for v in values))


def _required(placement: Placement) -> list[tuple[str, NodeRequirement]]:
    """The hard node rules: nodeSelector entries and requiredNodeAffinity, with their keys."""
    rules = [
        (f"nodeSelector.{key}", NodeRequirement(key=key, operator="In", values=(value,)))
        for key, value in placement.node_selector.items()
    ]
    rules += [(f"requiredNodeAffinity[{i}]", r) for i, r in enumerate(placement.required_node_affinity)]
    return rules


def _tolerates(tolerations: tuple[Toleration, ...], key: str, value: str, effect: str) -> bool:
    for rule in tolerations:
        if rule.effect is not None and rule.effect != effect:
            continue
        if rule.key is None and rule.operator == "Exists":
            return True
        if rule.key == key and (rule.operator == "Exists" or (rule.value or "") == value):
            return True
    return False


def _group_refuses(placement: Placement, group: _Group) -> Optional[tuple[str, str]]:
    """(rule, reason) for the first rule the group's nodes cannot meet; None when they can."""
    for rule, requirement in _required(placement):
        reason = _requirement_fails(requirement, group.labels)
        if reason:
            return rule, reason
    for taint in group.group.taints:
        if taint.effect != "PreferNoSchedule" and not _tolerates(
            placement.tolerations, taint.key, taint.value, taint.effect
        ):
            return "tolerations", f"taint {taint.render()} is not tolerated"
    return None


def _placements(config: Settings) -> list[tuple[str, Placement]]:
    found = [(_key("todo", "placement"), config.todo.placement)]
    if config.minio.enabled:
        found.append((_key("minio", "placement"), config.minio.placement))
    return found


def _placement_problems(config: Settings) -> Iterator[str]:
    groups = _groups(config)
    if not groups:
        return
    for key, placement in _placements(config):
        refusals = [(group, _group_refuses(placement, group)) for group in groups]
        if all(reason is not None for _, reason in refusals):
            rules = {reason[0] for _, reason in refusals if reason}
            where = f"{key}.{rules.pop()}" if len(rules) == 1 else key
            why = "; ".join(f"{group.name}: {reason[1]}" for group, reason in refusals if reason)
            field = groups[0].key.rsplit("[", 1)[0]
            yield f"{where}: no node group of {field} can run these pods ({why}); they would stay Pending"


#: The providers whose default instance must stay disabled, so that a resource that forgets its
#: `provider=` fails instead of deploying to whatever cluster the ambient kubeconfig points at.
GUARDED_PROVIDERS = ("kubernetes",)
GUARD_KEY = "pulumi:disable-default-providers"


def provider_guard_problems(raw: Mapping[str, str]) -> list[str]:
    """The stack must disable the default Kubernetes provider (a list holding kubernetes, or *)."""
    value = raw.get(GUARD_KEY)
    fix = f"set it to [{', '.join(GUARDED_PROVIDERS)}] so a resource without an explicit provider fails loudly"
    if value is None:
        return [f"{GUARD_KEY}: required key is missing; {fix}"]
    try:
        listed = json.loads(value)
    except json.JSONDecodeError:
        listed = value
    if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
        return [f"{GUARD_KEY}: must be a list of provider names (got {shown(listed)}); {fix}"]
    missing = [p for p in GUARDED_PROVIDERS if p not in listed and "*" not in listed]
    if missing:
        return [f"{GUARD_KEY}: {shown(listed)} leaves the default {', '.join(missing)} provider enabled; {fix}"]
    return []


def problems(config: Settings) -> list[str]:
    """Everything the sections' combination makes Kubernetes or the cloud refuse."""
    found: list[str] = []
    created = namespaces(config)
    found += [
        f"{item.key}: '{item.name}' is a namespace Kubernetes owns; the program would create and label it: "
        "choose another"
        for item in created
        if item.name in SYSTEM_NAMESPACES
    ]
    found += _duplicates([c for c in created if c.name not in SYSTEM_NAMESPACES], "sections", "Namespace")
    found += _duplicates(services(config), "Services", "name")
    found += _storage_class_problems(config)
    found += _volume_size_problems(config)
    found += _placement_problems(config)
    return found


_UNIVERSAL_LABELS = ("kubernetes.io/os", "kubernetes.io/arch", "kubernetes.io/hostname")


def warnings(config: Settings) -> list[str]:
    """What the stack cannot check: required placement on an existing cluster's unknown nodes."""
    if config.cluster != "existing":
        return []
    found = []
    for key, placement in _placements(config):
        for rule, requirement in _required(placement):
            if requirement.key in _UNIVERSAL_LABELS or requirement.operator in ("NotIn", "DoesNotExist"):
                continue
            wanted = "=" + ",".join(requirement.values) if requirement.values else ""
            found.append(
                f"{key}.{rule}: requires {requirement.key}{wanted} on a node of the existing cluster, whose "
                f"labels this stack cannot see; without one the pods stay Pending "
                f"(kubectl label node <node> {requirement.key}={requirement.values[0] if requirement.values else ''})"
            )
    return found
