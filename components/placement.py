"""Renders a `Placement` (settings/placement.py) to the pod-spec fields Kubernetes schedules by.

The value type lives in settings so stack config can hold it without importing components; the
Kubernetes shapes (nodeSelector, affinity, tolerations, priorityClassName) are built here.
"""

from __future__ import annotations

from typing import Any, Optional

from settings.placement import (
    NodeRequirement,
    Placement,
    PodTerm,
    PreferredNodeTerm,
    Toleration,
    WeightedPodTerm,
)


def node_requirement(requirement: NodeRequirement) -> dict[str, Any]:
    """One NodeSelectorRequirement."""
    rendered: dict[str, Any] = {"key": requirement.key, "operator": requirement.operator}
    if requirement.values:
        rendered["values"] = list(requirement.values)
    return rendered


def preferred_node_term(term: PreferredNodeTerm) -> dict[str, Any]:
    """One PreferredSchedulingTerm."""
    return {
        "weight": term.weight,
        "preference": {"matchExpressions": [node_requirement(req) for req in term.match]},
    }


def pod_term(term: PodTerm) -> dict[str, Any]:
    """One PodAffinityTerm."""
    rendered: dict[str, Any] = {
        "labelSelector": {"matchLabels": dict(term.labels)},
        "topologyKey": term.topology_key,
    }
    if term.namespaces is not None:
        rendered["namespaces"] = list(term.namespaces)
    return rendered


def weighted_pod_term(term: WeightedPodTerm) -> dict[str, Any]:
    """One WeightedPodAffinityTerm."""
    return {"weight": term.weight, "podAffinityTerm": pod_term(term.term)}


def toleration(rule: Toleration) -> dict[str, Any]:
    """One Toleration, with only the fields set."""
    rendered: dict[str, Any] = {"operator": rule.operator}
    for field, value in (
        ("key", rule.key),
        ("value", rule.value),
        ("effect", rule.effect),
        ("tolerationSeconds", rule.toleration_seconds),
    ):
        if value is not None:
            rendered[field] = value
    return rendered


def affinity(placement: Placement) -> Optional[dict[str, Any]]:
    """The pod's `affinity` field, or None when no affinity rule is set."""
    result: dict[str, Any] = {}
    node: dict[str, Any] = {}
    if placement.required_node_affinity:
        node["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [{"matchExpressions": [node_requirement(r) for r in placement.required_node_affinity]}]
        }
    if placement.preferred_node_affinity:
        node["preferredDuringSchedulingIgnoredDuringExecution"] = [
            preferred_node_term(t) for t in placement.preferred_node_affinity
        ]
    if node:
        result["nodeAffinity"] = node
    for field, required, preferred in (
        ("podAffinity", placement.required_pod_affinity, placement.preferred_pod_affinity),
        ("podAntiAffinity", placement.required_pod_anti_affinity, placement.preferred_pod_anti_affinity),
    ):
        rules: dict[str, Any] = {}
        if required:
            rules["requiredDuringSchedulingIgnoredDuringExecution"] = [pod_term(t) for t in required]
        if preferred:
            rules["preferredDuringSchedulingIgnoredDuringExecution"] = [weighted_pod_term(t) for t in preferred]
        if rules:
            result[field] = rules
    return result or None


def pod_spec_fields(placement: Placement) -> dict[str, Any]:
    """The pod-spec fields a placement sets, ready to merge into a pod spec."""
    fields: dict[str, Any] = {}
    if placement.node_selector:
        fields["nodeSelector"] = dict(placement.node_selector)
    rendered = affinity(placement)
    if rendered:
        fields["affinity"] = rendered
    if placement.tolerations:
        fields["tolerations"] = [toleration(t) for t in placement.tolerations]
    if placement.priority_class:
        fields["priorityClassName"] = placement.priority_class.name
    return fields
