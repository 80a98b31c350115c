"""Running the rules over a whole stack, as the offline plan does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Optional

from .config import EffectiveConfig, PolicyConfigError, PolicySettings, is_exempt, resolve
from .kube import KubeObject
from .policies import BY_NAME, POLICIES, Policy
from .rules.services import BALANCERS


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement: Literal["mandatory", "advisory"]
    urn: str
    message: str


def validate_config(
    config: Optional[Mapping[str, Any]] = None, *, balancer: Optional[str] = None, production: bool = False
) -> EffectiveConfig:
    """Validate a policy config (Pulumi's policy-pack-config shape) into effective settings.

    `balancer` and `production` are the stack's own settings (scaleplane:balancer,
    scaleplane:production). As in `pulumi preview` (policy/__main__.py), they fill in
    load-balancer-services.balancer and production-availability.production only where the policy
    config leaves them unset: a value the policy config sets wins.
    Raises PolicyConfigError naming every bad key.
    """
    effective = resolve(config, {p.name: (p.level, p.properties) for p in POLICIES})
    if balancer is not None and balancer not in BALANCERS:
        raise PolicyConfigError([f"balancer: {balancer!r} is not one of {', '.join(BALANCERS)}"])
    policies = dict(effective.policies)
    for policy, prop, value in (
        ("load-balancer-services", "balancer", balancer),
        ("production-availability", "production", production or None),
        ("open-load-balancers", "balancer", balancer),
        ("open-load-balancers", "production", production or None),
    ):
        settings = policies[policy]
        if value is not None and settings.options.get(prop) is None:
            policies[policy] = PolicySettings(settings.level, {**settings.options, prop: value})
    return EffectiveConfig(policies)


def names_of(obj: KubeObject) -> set[str]:
    """Every name an exemption may use for `obj`."""
    names = {obj.name, obj.urn}
    name = obj.metadata_name
    if isinstance(name, str) and name:
        names.add(name)
        if isinstance(obj.namespace, str):
            names.add(f"{obj.namespace}/{name}")
    return names


def run_policy(policy: Policy, objects: list[KubeObject], settings: PolicySettings) -> Iterable[tuple[KubeObject, str]]:
    """The violations one policy finds (exempt objects skipped), whatever its level."""
    if policy.scope == "resource":
        for obj in objects:
            if is_exempt(settings, names_of(obj), obj.namespace):
                continue
            for message in policy.check(obj, settings.options):
                yield obj, message
    else:
        for obj, message in policy.check(objects, settings.options):
            if not is_exempt(settings, names_of(obj), obj.namespace):
                yield obj, message


def evaluate(
    resources: Iterable[Mapping[str, Any]],
    config: Optional[Mapping[str, Any]] = None,
    *,
    balancer: Optional[str] = None,
    production: bool = False,
    declared: Iterable[Mapping[str, Any]] = (),
    declared_policies: Iterable[str] = (),
) -> list[Violation]:
    """Every violation in a stack's resources, in policy order then resource order.

    Each resource is a mapping with "type", "name", "urn" and "props". Disabled policies report
    nothing; the others report at their effective level.

    `declared` are objects a chart renders as its component declares them (what a pack cannot
    see inside a helm.v3.Release, and the offline plan does not render): only the policies named
    in `declared_policies` judge them, with the same exemptions, after the stack's own objects.
    """
    effective = validate_config(config, balancer=balancer, production=production)
    objects = [KubeObject.of(resource) for resource in resources]
    chart_objects = [KubeObject.of(resource) for resource in declared]
    unknown = sorted(set(declared_policies) - set(BY_NAME))
    if unknown:
        raise ValueError(f"declared_policies names no policy: {', '.join(unknown)}")
    violations: list[Violation] = []
    for policy in POLICIES:
        settings = effective.policies[policy.name]
        if settings.level == "disabled":
            continue
        judged = objects + chart_objects if policy.name in declared_policies else objects
        for obj, message in run_policy(policy, judged, settings):
            violations.append(Violation(policy.name, settings.level, obj.urn, message))
    return violations


def summarize(violations: Iterable[Violation]) -> dict[str, dict[str, int]]:
    """Counts by policy and level, for a report: {policy: {"mandatory": n, "advisory": m}}."""
    counts: dict[str, dict[str, int]] = {}
    for violation in violations:
        by_level = counts.setdefault(violation.policy, {})
        by_level[violation.enforcement] = by_level.get(violation.enforcement, 0) + 1
    return counts


def report(violations: Iterable[Violation]) -> list[str]:
    """Human-readable lines, grouped by policy (in pack order) and level, mandatory first.

    `policy [level] (n)` heads each group; each violation follows, indented, with its message.
    """
    violations = list(violations)
    lines: list[str] = []
    for policy in POLICIES:
        for level in ("mandatory", "advisory"):
            group = [v for v in violations if v.policy == policy.name and v.enforcement == level]
            if group:
                lines.append(f"{policy.name} [{level}] ({len(group)})")
                lines.extend(f"  {v.message}" for v in group)
    return lines


def has_mandatory(violations: Iterable[Violation]) -> bool:
    """Whether any violation blocks the deployment (the plan then exits non-zero)."""
    return any(v.enforcement == "mandatory" for v in violations)


__all__ = [
    "BY_NAME",
    "Violation",
    "evaluate",
    "has_mandatory",
    "names_of",
    "report",
    "run_policy",
    "summarize",
    "validate_config",
]
