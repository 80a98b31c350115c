"""Reading plain property trees: unknown values, nested look-ups and Kubernetes quantities.

Resource properties arrive as plain JSON-like data (mappings, sequences, strings, numbers) from
three places: pulumi_policy (converted by policy/__main__.py), the offline plan's mock run, and
tests. During a preview some values are not known yet; a rule never reports a violation it can
only guess at, so every look-up here lets the caller tell "absent" from "unknown".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Optional


class Unknown:
    """A value that is computed during deployment and so cannot be judged during a preview."""

    _instance: Optional[Unknown] = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = Unknown()

#: How the offline plan's mock run (deploy/mockrun.py) spells a value only known after deploy.
MOCKRUN_UNKNOWN = "<unknown: known after deploy>"


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN or (isinstance(value, str) and value == MOCKRUN_UNKNOWN)


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def get(value: Any, *path: str | int) -> Any:
    """Follow `path` through mappings and lists. Returns None when absent, UNKNOWN when unknown."""
    for key in path:
        if is_unknown(value):
            return UNKNOWN
        if isinstance(key, int):
            if not is_list(value) or not -len(value) <= key < len(value):
                return None
            value = value[key]
        else:
            if not is_mapping(value):
                return None
            value = value.get(key)
    return UNKNOWN if is_unknown(value) else value


def normalize(value: Any) -> Any:
    """Plain dicts and lists, with whole floats as the integers they stand for.

    Pulumi carries every number as a double (protobuf Struct), so a port 8080 arrives as 8080.0,
    from the engine and from the mock run alike. Fractions (cpu: 0.5) stay floats.
    """
    if is_mapping(value):
        return {key: normalize(item) for key, item in value.items()}
    if is_list(value):
        return [normalize(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one (absent or null)."""
    return value if is_mapping(value) else {}


def items(value: Any) -> list[Any]:
    """`value` as a list: a list itself, empty when absent or null."""
    return list(value) if is_list(value) else []


_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$"
)
_SUFFIX = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes resource quantity ("250m", "1.5", "512Mi", "1e3", 2) as a Decimal.

    Raises ValueError for anything Kubernetes would refuse.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a quantity")
    match = _QUANTITY.match(value.strip())
    if not match or value != value.strip():
        raise ValueError(f"{value!r} is not a quantity")
    number, exponent, suffix = match.groups()
    try:
        amount = Decimal(number)
        if exponent:
            return amount * (Decimal(10) ** int(exponent[1:]))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{value!r} is not a quantity") from None
    return amount * _SUFFIX[suffix]
