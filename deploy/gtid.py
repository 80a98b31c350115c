"""MySQL GTID sets: parsed from `@@global.gtid_executed`, compared and subtracted as sets.

A GTID set is `uuid:interval[:interval...]` per source server, the sources separated by commas
(MySQL prints `,\\n` between them), each interval `n` or `n-m`. Two servers hold the same
transactions exactly when their sets are equal as sets: the text differs with interval splits,
source order and letter case, so it is never compared as a string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_INTERVAL = re.compile(r"^(\d+)(?:-(\d+))?$")

Intervals = tuple[tuple[int, int], ...]


def _merge(intervals: list[tuple[int, int]]) -> Intervals:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _subtract(have: Intervals, remove: Intervals) -> Intervals:
    left: list[tuple[int, int]] = []
    for start, end in have:
        pieces = [(start, end)]
        for r_start, r_end in remove:
            next_pieces = []
            for p_start, p_end in pieces:
                if r_end < p_start or r_start > p_end:
                    next_pieces.append((p_start, p_end))
                    continue
                if p_start < r_start:
                    next_pieces.append((p_start, r_start - 1))
                if r_end < p_end:
                    next_pieces.append((r_end + 1, p_end))
            pieces = next_pieces
        left.extend(pieces)
    return _merge(left)


@dataclass(frozen=True)
class GtidSet:
    """An immutable GTID set: source uuid (lower case) -> merged, sorted, non-empty intervals."""

    sources: dict[str, Intervals] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> GtidSet:
        """MySQL's text form; raises ValueError naming the part that is not a GTID set."""
        collected: dict[str, list[tuple[int, int]]] = {}
        for part in text.replace("\n", "").split(","):
            part = part.strip()
            if not part:
                continue
            uuid, *intervals = part.split(":")
            uuid = uuid.strip().lower()
            if not _UUID.match(uuid) or not intervals:
                raise ValueError(f"not a GTID set: {part!r} (expected uuid:n[-m][:n[-m]...])")
            for interval in intervals:
                match = _INTERVAL.match(interval.strip())
                if match is None:
                    raise ValueError(f"not a GTID interval: {interval!r} in {part!r}")
                start = int(match.group(1))
                end = int(match.group(2) or start)
                if start < 1 or end < start:
                    raise ValueError(f"not a GTID interval: {interval!r} in {part!r}")
                collected.setdefault(uuid, []).append((start, end))
        return cls({uuid: _merge(spans) for uuid, spans in sorted(collected.items())})

    def __str__(self) -> str:
        return ",".join(
            uuid + "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in spans)
            for uuid, spans in sorted(self.sources.items())
        )

    def __bool__(self) -> bool:
        return bool(self.sources)

    def __len__(self) -> int:
        """How many transactions the set names."""
        return sum(b - a + 1 for spans in self.sources.values() for a, b in spans)

    def __sub__(self, other: GtidSet) -> GtidSet:
        result = {}
        for uuid, spans in self.sources.items():
            left = _subtract(spans, other.sources.get(uuid, ()))
            if left:
                result[uuid] = left
        return GtidSet(result)

    def __or__(self, other: GtidSet) -> GtidSet:
        uuids = sorted(set(self.sources) | set(other.sources))
        return GtidSet({u: _merge(list(self.sources.get(u, ())) + list(other.sources.get(u, ()))) for u in uuids})

    def __and__(self, other: GtidSet) -> GtidSet:
        return self - (self - other)

    def issubset(self, other: GtidSet) -> bool:
        return not (self - other)

    def __le__(self, other: GtidSet) -> bool:
        return self.issubset(other)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GtidSet) and self.sources == other.sources

    def __hash__(self) -> int:
        return hash(str(self))
