"""The pack's configuration: enforcement levels, exemptions and each policy's own settings.

The shape is Pulumi's policy config file (`pulumi preview --policy-pack-config FILE`):

    {
      "all": "advisory",                                  # optional: every policy's level
      "workload-probes": "mandatory",                     # a level alone, or
      "image-tags": {"enforcementLevel": "mandatory",     # a level with the policy's properties
                     "exemptNamespaces": ["kube-system"]}
    }

Each policy declares its properties as JSON Schema (pulumi_policy's config_schema); the Pulumi CLI
validates a config file against them, and `validate_config` applies the same schema here so the
offline plan refuses exactly what `pulumi preview` would, naming the offending key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from .values import is_list, is_mapping, is_unknown

Level = Literal["mandatory", "advisory", "disabled"]
LEVELS: tuple[Level, ...] = ("mandatory", "advisory", "disabled")

#: Properties every policy takes: where it does not apply.
COMMON_PROPERTIES: dict[str, dict[str, Any]] = {
    "exemptNamespaces": {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "default": [],
        "description": "Namespaces whose objects this policy skips (e.g. kube-system).",
    },
    "exemptResources": {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "default": [],
        "description": (
            "Objects this policy skips, each named by its Pulumi resource name, its metadata.name, "
            "or namespace/metadata.name."
        ),
    },
}


class PolicyConfigError(ValueError):
    """The policy configuration is invalid; the message names every offending key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid policy configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class PolicySettings:
    """One policy's effective level and properties (defaults filled in)."""

    level: Level
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exempt_namespaces(self) -> frozenset[str]:
        return frozenset(self.options.get("exemptNamespaces", ()))

    @property
    def exempt_resources(self) -> frozenset[str]:
        return frozenset(self.options.get("exemptResources", ()))


@dataclass(frozen=True)
class EffectiveConfig:
    """Every policy's effective settings, by policy name."""

    policies: Mapping[str, PolicySettings]

    def level(self, policy: str) -> Level:
        return self.policies[policy].level

    def options(self, policy: str) -> Mapping[str, Any]:
        return self.policies[policy].options


_TYPE_NAMES = {"string": "a string", "boolean": "a boolean", "integer": "an integer", "array": "a list"}


def check_value(value: Any, schema: Mapping[str, Any], path: str, problems: list[str]) -> Any:
    """Validate `value` against the JSON Schema subset the pack uses; return it normalised.

    Integers arrive from the Pulumi engine as floats (protobuf Struct numbers are doubles): a
    whole float is taken as the integer it is.
    """
    expected = schema.get("type")
    if expected == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean, got {value!r}")
            return None
    elif expected == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer, got {value!r}")
            return None
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: must be at least {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: must be at most {schema['maximum']}, got {value}")
    elif expected == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
            return None
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{path}: must not be empty")
    elif expected == "array":
        if not is_list(value):
            problems.append(f"{path}: expected a list, got {value!r}")
            return None
        item_schema = schema.get("items", {})
        value = tuple(check_value(item, item_schema, f"{path}[{i}]", problems) for i, item in enumerate(value))
    elif expected is not None:
        raise AssertionError(f"schema type {expected!r} is not supported")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        problems.append(f"{path}: {value!r} is not one of {allowed}")
    return value


def _level(value: Any, path: str, problems: list[str]) -> Level | None:
    if value == "remediate":
        problems.append(f"{path}: 'remediate' is not supported: these policies validate and never remediate")
        return None
    if value not in LEVELS:
        problems.append(f"{path}: {value!r} is not an enforcement level ({', '.join(LEVELS)})")
        return None
    return value


def policy_options(
    policy: str, schema: Mapping[str, Mapping[str, Any]], raw: Mapping[str, Any] | None, problems: list[str]
) -> Mapping[str, Any]:
    """One policy's properties validated against its schema, defaults filled in."""
    raw = raw or {}
    options: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "enforcementLevel":
            continue
        if key not in schema:
            allowed = ", ".join(["enforcementLevel", *sorted(schema)])
            problems.append(f"{policy}.{key}: unknown property; {policy} takes {allowed}")
            continue
        options[key] = check_value(value, schema[key], f"{policy}.{key}", problems)
    for key, property_schema in schema.items():
        if key not in options and "default" in property_schema:
            default = property_schema["default"]
            options[key] = tuple(default) if isinstance(default, list) else default
    return MappingProxyType(options)


def resolve(
    config: Mapping[str, Any] | None, specs: Mapping[str, tuple[Level, Mapping[str, Mapping[str, Any]]]]
) -> EffectiveConfig:
    """Validate a whole pack config against `specs` (policy -> (default level, schema))."""
    problems: list[str] = []
    config = config if config is not None else {}
    if not is_mapping(config):
        raise PolicyConfigError([f"the policy config must be a mapping of policy names, got {config!r}"])
    default_level: Level | None = None
    if "all" in config:
        value = config["all"]
        if is_mapping(value):
            extra = sorted(set(value) - {"enforcementLevel"})
            if extra:
                problems.append(f"all.{extra[0]}: 'all' takes only enforcementLevel")
            value = value.get("enforcementLevel")
            default_level = _level(value, "all.enforcementLevel", problems)
        else:
            default_level = _level(value, "all", problems)
    for key in config:
        if key != "all" and key not in specs:
            problems.append(f"{key}: unknown policy; the pack has {', '.join(specs)}")
    policies: dict[str, PolicySettings] = {}
    for name, (declared_level, schema) in specs.items():
        raw = config.get(name)
        level: Level | None = default_level or declared_level
        properties: Mapping[str, Any] | None = None
        if raw is None:
            pass
        elif isinstance(raw, str):
            level = _level(raw, name, problems)
        elif is_mapping(raw):
            if "enforcementLevel" in raw:
                level = _level(raw["enforcementLevel"], f"{name}.enforcementLevel", problems)
            properties = raw
        else:
            problems.append(f"{name}: expected an enforcement level or a mapping, got {raw!r}")
        options = policy_options(name, schema, properties, problems)
        policies[name] = PolicySettings(level or declared_level, options)
    if problems:
        raise PolicyConfigError(problems)
    return EffectiveConfig(MappingProxyType(policies))


def schema_of(properties: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """A policy's full property schema: its own properties plus the common exemptions."""
    merged = {**COMMON_PROPERTIES, **properties}
    return {key: dict(value) for key, value in merged.items()}


def is_exempt(settings: PolicySettings, names: set[str], namespace: Any) -> bool:
    """Whether an object (known by any of `names`, in `namespace`) is exempt from a policy.

    A namespace not known yet (computed during the preview) may be an exempt one: the object is
    then skipped, as a rule never reports a violation it can only guess at.
    """
    if settings.exempt_namespaces and is_unknown(namespace):
        return True
    if isinstance(namespace, str) and namespace in settings.exempt_namespaces:
        return True
    return bool(names & settings.exempt_resources)
