"""scaleplane-policies: the CrossGuard pack `pulumi preview --policy-pack policy` runs.

Every rule lives in scaleplane_policy as a plain function over plain data; this module only
wraps each one in a pulumi_policy policy, turning what the engine hands a policy (proxied
properties in which unknown preview values raise, numbers as floats) into plain data first.
The engine applies the enforcement levels; `args.get_config()` gives each policy's properties.

Two properties describe the stack rather than the policy: load-balancer-services.balancer and
production-availability.production. When the policy config leaves them unset they are read from
the stack's own configuration (scaleplane:balancer, scaleplane:production), which the engine
hands every policy pack, so `pulumi preview --policy-pack policy` judges a stack by its settings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# The language host runs this file with policy/ as the working directory (`python -m
# pulumi.policy`), which puts it on sys.path; make sure of it however the file is started, so
# the rules package beside it imports.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import pulumi  # noqa: E402
from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError  # noqa: E402
from pulumi_policy.secret import Secret  # noqa: E402
from scaleplane_policy import POLICIES, UNKNOWN, KubeObject, Policy, PolicyConfigError, PolicySettings  # noqa: E402
from scaleplane_policy.config import policy_options  # noqa: E402
from scaleplane_policy.engine import run_policy  # noqa: E402

PACK_NAME = "scaleplane-policies"
#: The Pulumi project whose stack configuration describes the stack.
PROJECT_NAMESPACE = "scaleplane"
#: Policy properties that default to a stack setting: (property, policy, stack config key).
FROM_STACK = (
    ("balancer", "load-balancer-services", "balancer"),
    ("production", "production-availability", "production"),
    ("balancer", "open-load-balancers", "balancer"),
    ("production", "open-load-balancers", "production"),
)


def plain(value: Any) -> Any:
    """Plain dicts and lists from the engine's proxies: unknowns become UNKNOWN, secrets are
    unwrapped, and whole floats become the integers they were (protobuf numbers are doubles)."""
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, Mapping):
        result = {}
        for key in value:
            try:
                result[key] = plain(value[key])
            except UnknownValueError:
                result[key] = UNKNOWN
        return result
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        result_list = []
        for index in range(len(value)):
            try:
                result_list.append(plain(value[index]))
            except UnknownValueError:
                result_list.append(UNKNOWN)
        return result_list
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def stack_setting(key: str) -> Any:
    """A scaleplane:<key> value of the stack being previewed, as written (None when unset)."""
    raw = pulumi.Config(PROJECT_NAMESPACE).get(key)
    if raw is None or key != "production":
        return raw
    if raw.lower() not in ("true", "false"):
        raise PolicyConfigError([f"{PROJECT_NAMESPACE}:{key}: expected true or false, got {raw!r}"])
    return raw.lower() == "true"


def settings_for(policy: Policy, config: Mapping[str, Any]) -> PolicySettings:
    """The policy's properties from the engine, checked against its schema (the CLI did too),
    with the stack's own settings where the policy config leaves them unset."""
    problems: list[str] = []
    raw = dict(plain(config))
    for prop, policy_name, key in FROM_STACK:
        if policy.name == policy_name and raw.get(prop) is None:
            value = stack_setting(key)
            if value is not None:
                raw[prop] = value
    options = policy_options(policy.name, policy.properties, raw, problems)
    if problems:
        raise PolicyConfigError(problems)
    return PolicySettings(policy.level, options)


def _resource_validation(policy: Policy) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        settings = settings_for(policy, args.get_config())
        obj = KubeObject(type=args.resource_type, name=args.name, urn=args.urn, props=plain(args.props))
        for _, message in run_policy(policy, [obj], settings):
            report_violation(message, None)

    return validate


def _stack_validation(policy: Policy) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        settings = settings_for(policy, args.get_config())
        objects = [
            KubeObject(type=r.resource_type, name=r.name, urn=r.urn, props=plain(r.props)) for r in args.resources
        ]
        for obj, message in run_policy(policy, objects, settings):
            report_violation(message, obj.urn)

    return validate


def build_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """One pulumi_policy policy per rule, with its default level and config schema."""
    built: list[ResourceValidationPolicy | StackValidationPolicy] = []
    for policy in POLICIES:
        common = {
            "enforcement_level": EnforcementLevel(policy.level),
            "config_schema": PolicyConfigSchema(properties=policy.properties),
        }
        if policy.scope == "resource":
            validate = _resource_validation(policy)
            built.append(ResourceValidationPolicy(policy.name, policy.description, validate, **common))
        else:
            validate = _stack_validation(policy)
            built.append(StackValidationPolicy(policy.name, policy.description, validate, **common))
    return built


if __name__ == "__main__":
    PolicyPack(name=PACK_NAME, policies=build_policies())
