"""Placement as a typed, reusable value: where a pod may, should and must not run.

A `Placement` is plain data, so stack config, components and tests share it; components/placement.py
renders it to the pod-spec fields Kubernetes schedules by (nodeSelector, affinity, tolerations,
priorityClassName). Rules that Kubernetes would only reject at apply time (an `In` without values,
a `Gt` with a non-integer) are refused here, with the offending field named.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Self

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


@settings
class PreferredNodeTerm:
    """A weighted node preference (preferredDuringSchedulingIgnoredDuringExecution)."""

    weight: Weight
    match: Annotated[tuple[NodeRequirement, ...], Field(min_length=1)]


@settings
class PodTerm:
    """Pods labelled `labels`, counted within one `topologyKey` domain (a zone by default)."""

    labels: Annotated[dict[LabelKey, LabelValue], Field(min_length=1)]
    topology_key: LabelKey = ZONE
    #: None: the pod's own namespace.
    namespaces: Optional[tuple[str, ...]] = None


@settings
class WeightedPodTerm:
    """A weighted pod (anti-)affinity preference."""

    weight: Weight
    term: PodTerm


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
