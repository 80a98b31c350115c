"""Placement as a typed, reusable value: where a pod may, should and must not run.

A `Placement` renders to the pod-spec fields Kubernetes schedules by (nodeSelector, affinity,
tolerations, priorityClassName). It is plain data, so stack config, components and tests share it.
Rules that Kubernetes would only reject at apply time (an `In` without values, a `Gt` with a
non-integer) are refused here, with the offending field named.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Self

from pydantic import AfterValidator, Field, model_validator

from settings.base import settings

ZONE = "topology.kubernetes.io/zone"

LabelKey = Annotated[
    str, Field(pattern=r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
]
LabelValue = Annotated[str, Field(pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")]
Weight = Annotated[int, Field(ge=1, le=100)]


@settings
class NodeRequirement:
    """One node-selector requirement: `key operator values`."""

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: tuple[LabelValue, ...] = ()

    @model_validator(mode="after")
    def _values_fit_operator(self) -> Self:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        if self.operator in ("Gt", "Lt") and (len(self.values) != 1 or not self.values[0].isdigit()):
            raise ValueError(f"operator {self.operator} takes exactly one integer value")
        return self

    def render(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"key": self.key, "operator": self.operator}
        if self.values:
            rendered["values"] = list(self.values)
        return rendered


@settings
class PreferredNodeTerm:
    """A weighted node preference (preferredDuringSchedulingIgnoredDuringExecution)."""

    weight: Weight
    match: Annotated[tuple[NodeRequirement, ...], Field(min_length=1)]

    def render(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "preference": {"matchExpressions": [req.render() for req in self.match]},
        }


@settings
class PodTerm:
    """Pods labelled `labels`, counted within one `topologyKey` domain (a zone by default)."""

    labels: Annotated[dict[LabelKey, LabelValue], Field(min_length=1)]
    topology_key: LabelKey = ZONE
    #: None: the pod's own namespace.
    namespaces: Optional[tuple[str, ...]] = None

    def render(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "labelSelector": {"matchLabels": dict(self.labels)},
            "topologyKey": self.topology_key,
        }
        if self.namespaces is not None:
            rendered["namespaces"] = list(self.namespaces)
        return rendered


@settings
class WeightedPodTerm:
    """A weighted pod (anti-)affinity preference."""

    weight: Weight
    term: PodTerm

    def render(self) -> dict[str, Any]:
        return {"weight": self.weight, "podAffinityTerm": self.term.render()}


@settings
class Toleration:
    """Lets a pod onto nodes with a matching taint."""

    key: Optional[LabelKey] = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: Optional[LabelValue] = None
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None
    toleration_seconds: Optional[Annotated[int, Field(ge=0)]] = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("operator Exists takes no value")
        if self.operator == "Equal" and self.key is None:
            raise ValueError("operator Equal needs a key")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds only applies to effect NoExecute")
        return self

    def render(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"operator": self.operator}
        for field, value in (
            ("key", self.key),
            ("value", self.value),
            ("effect", self.effect),
            ("tolerationSeconds", self.toleration_seconds),
        ):
            if value is not None:
                rendered[field] = value
        return rendered


def _not_a_system_priority(name: str) -> str:
    if name.startswith("system-"):
        raise ValueError(f"'{name}': the prefix 'system-' is reserved for Kubernetes' own priority classes")
    return name


@settings
class PriorityClassSettings:
    """A PriorityClass the workload runs at; created by the component that uses it."""

    #: A DNS subdomain; the "system-" prefix is reserved for Kubernetes' own classes.
    name: Annotated[
        str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"), AfterValidator(_not_a_system_priority)
    ]
    value: Annotated[int, Field(ge=-2_147_483_648, le=1_000_000_000)]
    preemption_policy: Literal["PreemptLowerPriority", "Never"] = "PreemptLowerPriority"
    description: str = ""


@settings
class Placement:
    """Where a workload's pods run. Every part is optional; all parts set must hold together."""

    node_selector: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    #: All must hold (one nodeSelectorTerm, its expressions ANDed).
    required_node_affinity: tuple[NodeRequirement, ...] = ()
    preferred_node_affinity: tuple[PreferredNodeTerm, ...] = ()
    required_pod_affinity: tuple[PodTerm, ...] = ()
    preferred_pod_affinity: tuple[WeightedPodTerm, ...] = ()
    required_pod_anti_affinity: tuple[PodTerm, ...] = ()
    preferred_pod_anti_affinity: tuple[WeightedPodTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    priority_class: Optional[PriorityClassSettings] = None

    def nodes_only(self) -> Placement:
        """The node rules alone (nodeSelector, node affinity, tolerations), without pod
        (anti-)affinity or priority: for a companion workload that must run on the same nodes."""
        return Placement(
            node_selector=dict(self.node_selector),
            required_node_affinity=self.required_node_affinity,
            preferred_node_affinity=self.preferred_node_affinity,
            tolerations=self.tolerations,
        )

    def affinity(self) -> Optional[dict[str, Any]]:
        """The pod's `affinity` field, or None when no affinity rule is set."""
        affinity: dict[str, Any] = {}
        node: dict[str, Any] = {}
        if self.required_node_affinity:
            node["requiredDuringSchedulingIgnoredDuringExecution"] = {
                "nodeSelectorTerms": [{"matchExpressions": [r.render() for r in self.required_node_affinity]}]
            }
        if self.preferred_node_affinity:
            node["preferredDuringSchedulingIgnoredDuringExecution"] = [t.render() for t in self.preferred_node_affinity]
        if node:
            affinity["nodeAffinity"] = node
        for field, required, preferred in (
            ("podAffinity", self.required_pod_affinity, self.preferred_pod_affinity),
            ("podAntiAffinity", self.required_pod_anti_affinity, self.preferred_pod_anti_affinity),
        ):
            rules: dict[str, Any] = {}
            if required:
                rules["requiredDuringSchedulingIgnoredDuringExecution"] = [t.render() for t in required]
            if preferred:
                rules["preferredDuringSchedulingIgnoredDuringExecution"] = [t.render() for t in preferred]
            if rules:
                affinity[field] = rules
        return affinity or None

    def pod_spec_fields(self) -> dict[str, Any]:
        """The pod-spec fields this placement sets, ready to merge into a pod spec."""
        fields: dict[str, Any] = {}
        if self.node_selector:
            fields["nodeSelector"] = dict(self.node_selector)
        affinity = self.affinity()
        if affinity:
            fields["affinity"] = affinity
        if self.tolerations:
            fields["tolerations"] = [t.render() for t in self.tolerations]
        if self.priority_class:
            fields["priorityClassName"] = self.priority_class.name
        return fields
