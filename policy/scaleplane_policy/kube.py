"""A read-only view of one Kubernetes object as Pulumi registers it, and its pod template.

`props` are the object's camelCase fields ({"apiVersion", "kind", "metadata", "spec", ...}):
what pulumi_policy hands a policy for a `kubernetes:<group>/<version>:<Kind>` resource and what
the offline plan records as a resource's inputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Optional

from .values import get, is_list, is_mapping, is_unknown, items, mapping, normalize

#: Controllers whose pods run until stopped: each container must say when it is alive and ready.
LONG_RUNNING = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Pod"})
#: Every kind that runs pods, run-to-completion ones included.
WORKLOADS = LONG_RUNNING | {"Job", "CronJob"}
#: API groups each workload kind is served from (core is the empty group, spelled "core" in types).
_WORKLOAD_GROUPS = {
    "Pod": {"core"},
    "ReplicationController": {"core"},
    "Deployment": {"apps", "extensions"},
    "StatefulSet": {"apps"},
    "DaemonSet": {"apps", "extensions"},
    "ReplicaSet": {"apps", "extensions"},
    "Job": {"batch"},
    "CronJob": {"batch"},
}

ContainerKind = Literal["container", "init container", "sidecar", "ephemeral container"]


@dataclass(frozen=True)
class Container:
    """One container of a pod template, with where it sits in the pod."""

    kind: ContainerKind
    index: int
    spec: Mapping[str, Any]

    @property
    def name(self) -> str:
        name = self.spec.get("name")
        return name if isinstance(name, str) else f"#{self.index}"

    @property
    def runs_with_the_pod(self) -> bool:
        """Regular containers and native sidecars (init containers with restartPolicy Always)."""
        return self.kind in ("container", "sidecar")

    def describe(self) -> str:
        return f'{self.kind} "{self.name}"'


@dataclass(frozen=True)
class KubeObject:
    """A Pulumi resource of a Kubernetes type: its token, Pulumi name, URN and properties."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]

    @classmethod
    def of(cls, resource: Mapping[str, Any]) -> KubeObject:
        missing = [key for key in ("type", "name", "urn", "props") if key not in resource]
        if missing:
            raise ValueError(f"a resource needs the keys type, name, urn and props; missing: {', '.join(missing)}")
        props = resource["props"]
        return cls(
            type=str(resource["type"]),
            name=str(resource["name"]),
            urn=str(resource["urn"]),
            props=normalize(props) if is_mapping(props) else {},
        )

    @property
    def group(self) -> Optional[str]:
        """The API group from the type token (`kubernetes:apps/v1:Deployment` -> apps)."""
        parts = self.type.split(":")
        if len(parts) != 3 or parts[0] != "kubernetes" or "/" not in parts[1]:
            return None
        return parts[1].split("/")[0]

    @property
    def kind(self) -> Optional[str]:
        """The Kubernetes kind of a plain object; None for Helm, YAML and provider resources."""
        if self.group is None or self.group in ("helm.sh", "yaml"):
            return None
        return self.type.split(":")[2]

    def is_kind(self, *kinds: str) -> bool:
        return self.kind in kinds

    @property
    def is_workload(self) -> bool:
        kind = self.kind
        return kind in _WORKLOAD_GROUPS and self.group in _WORKLOAD_GROUPS[kind]

    @property
    def metadata_name(self) -> Any:
        """metadata.name: a string, UNKNOWN, or None when the provider will auto-name it."""
        return get(self.props, "metadata", "name")

    @property
    def namespace(self) -> Any:
        """metadata.namespace; "default" when unset (the provider's default namespace)."""
        namespace = get(self.props, "metadata", "namespace")
        return namespace if namespace is not None and namespace != "" else "default"

    def describe(self) -> str:
        """`Kind namespace/name` for messages (the Pulumi name when metadata.name is not known)."""
        name = self.metadata_name
        shown = name if isinstance(name, str) and name else self.name
        namespace = self.namespace
        where = f"{namespace}/" if isinstance(namespace, str) and self.kind not in _CLUSTER_SCOPED else ""
        return f"{self.kind or self.type} {where}{shown}"

    # -- pod templates ----------------------------------------------------------------------

    @property
    def pod_template(self) -> Any:
        """The pod template's metadata+spec mapping (the Pod itself for a bare Pod), None if absent."""
        kind = self.kind
        if kind == "Pod":
            return self.props
        if kind == "CronJob":
            return get(self.props, "spec", "jobTemplate", "spec", "template")
        if self.is_workload:
            return get(self.props, "spec", "template")
        return None

    @property
    def pod_spec(self) -> Any:
        """The pod spec (a mapping), UNKNOWN, or None when this is no workload or it has none."""
        template = self.pod_template
        if is_unknown(template):
            return template
        return get(template, "spec") if template is not None else None

    @property
    def pod_labels(self) -> Any:
        template = self.pod_template
        return get(template, "metadata", "labels") if template is not None else None

    def containers(self) -> Iterator[Container]:
        """Every container of the pod template, init and ephemeral ones included, in pod order."""
        spec = self.pod_spec
        if not is_mapping(spec):
            return
        for index, container in enumerate(items(spec.get("initContainers"))):
            if is_mapping(container):
                restart = get(container, "restartPolicy")
                yield Container("sidecar" if restart == "Always" else "init container", index, container)
        for index, container in enumerate(items(spec.get("containers"))):
            if is_mapping(container):
                yield Container("container", index, container)
        for index, container in enumerate(items(spec.get("ephemeralContainers"))):
            if is_mapping(container):
                yield Container("ephemeral container", index, container)

    def containers_unknown(self) -> bool:
        """True when the pod spec or one of its container lists is not known yet."""
        spec = self.pod_spec
        if is_unknown(spec):
            return True
        if not is_mapping(spec):
            return False
        return any(
            is_unknown(spec.get(key)) or any(is_unknown(c) for c in items(spec.get(key)))
            for key in ("initContainers", "containers", "ephemeralContainers")
        )


_CLUSTER_SCOPED = frozenset(
    {"Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
     "CustomResourceDefinition", "PriorityClass", "IngressClass", "VolumeSnapshotClass"}
)


def selector_matches(selector: Any, labels: Any) -> Optional[bool]:
    """Whether a LabelSelector selects `labels`; None when either is unknown.

    An empty selector ({}) selects everything, as in a PodDisruptionBudget (policy/v1); a null
    selector selects nothing.
    """
    if is_unknown(selector) or is_unknown(labels):
        return None
    if selector is None:
        return False
    if not is_mapping(selector):
        return False
    labels = mapping(labels)
    if any(is_unknown(v) for v in labels.values()):
        return None
    match_labels = selector.get("matchLabels")
    if is_unknown(match_labels):
        return None
    for key, value in mapping(match_labels).items():
        if is_unknown(value):
            return None
        if labels.get(key) != value:
            return False
    expressions = selector.get("matchExpressions")
    if is_unknown(expressions):
        return None
    for expression in items(expressions):
        if not is_mapping(expression):
            return False
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values")
        if any(is_unknown(v) for v in (key, operator, values)):
            return None
        values = [v for v in items(values)] if is_list(values) else []
        if operator == "In":
            if key not in labels or labels[key] not in values:
                return False
        elif operator == "NotIn":
            if key in labels and labels[key] in values:
                return False
        elif operator == "Exists":
            if key not in labels:
                return False
        elif operator == "DoesNotExist":
            if key in labels:
                return False
        else:
            return False
    return True
