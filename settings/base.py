"""Shared machinery for the settings dataclasses: strict, frozen, camelCase config keys."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass as _pydantic_dataclass

NAMESPACE = "scaleplane"

# Config keys are camelCase (Pulumi's convention); Python fields are snake_case. Unknown keys
# are errors, values are never coerced ("3" is not 3), and every settings value is immutable.
SETTINGS_CONFIG = ConfigDict(
    alias_generator=to_camel,
    populate_by_name=True,
    extra="forbid",
    strict=True,
)

T = TypeVar("T")

#: A Kubernetes DNS label (namespace and object names).
DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
#: An exact chart version (what the chart-pinning policy demands).
ChartVersion = Annotated[str, Field(pattern=r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")]


#: Longest value a message quotes; longer ones are cut with an ellipsis (a 100 KB value stays readable).
SHOWN_LENGTH = 80


def shown(value: Any, *, quote: bool = True, limit: int = SHOWN_LENGTH) -> str:
    """A value as a message quotes it: JSON-quoted when asked, cut to `limit` characters with an ellipsis."""
    text = json.dumps(value, ensure_ascii=False) if quote else str(value)
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…" + (f" ({len(str(value))} characters)" if isinstance(value, str) else "")


def settings(cls: type[T]) -> type[T]:
    """Declare a frozen, validated settings dataclass whose config keys are camelCase."""
    decorate: Callable[[type[T]], type[T]] = _pydantic_dataclass(frozen=True, config=SETTINGS_CONFIG)
    return decorate(cls)


class SettingsError(ValueError):
    """Stack configuration is invalid. The message names every offending key path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {problem}" for problem in problems))


def key_path(top: str, loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as the config key path a user types."""
    path = f"{NAMESPACE}:{shown(top, quote=False)}"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{shown(str(part), quote=False)}"
    return path


def parse(cls: type[T], data: Any) -> T:
    """Validate plain data (as a config file holds it) into a settings dataclass."""
    return TypeAdapter(cls).validate_json(json.dumps(data))


def check_replica_range(min_replicas: int, max_replicas: int) -> None:
    """An autoscaling range must not be empty."""
    if min_replicas > max_replicas:
        raise ValueError(f"minReplicas ({min_replicas}) must not exceed maxReplicas ({max_replicas})")
