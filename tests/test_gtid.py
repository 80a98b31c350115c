"""deploy/gtid.py: GTID sets compared and subtracted as sets, never as text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from deploy.gtid import GtidSet

A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
B = "4b2c1d9a-0000-4000-8000-000000000001"


def test_mysqls_text_with_newlines_and_split_intervals_parses_to_the_same_set() -> None:
    # MySQL prints ",\n" between sources; intervals may come split or overlapping.
    printed = GtidSet.parse(f"{A}:1-5:7,\n{B}:1-3")
    other = GtidSet.parse(f"{B.upper()}:1-2:3, {A}:1-3:4-5:7")
    assert printed == other
    assert str(printed) == f"{A}:1-5:7,{B}:1-3"
    assert len(printed) == 9


def test_subset_and_difference_as_in_mysqls_gtid_subtract() -> None:
    # GTID_SUBTRACT('3E11FA47-...:21-57', '3E11FA47-...:20-25') = '3e11fa47-...:26-57' (MySQL manual).
    assert str(GtidSet.parse(f"{A}:21-57") - GtidSet.parse(f"{A}:20-25")) == f"{A}:26-57"
    assert str(GtidSet.parse(f"{A}:21-57") - GtidSet.parse(f"{A}:25-30")) == f"{A}:21-24:31-57"
    assert GtidSet.parse(f"{A}:21-25") <= GtidSet.parse(f"{A}:20-30")
    assert not GtidSet.parse(f"{A}:1-5,{B}:1") <= GtidSet.parse(f"{A}:1-5")
    assert GtidSet.parse("") == GtidSet() and not GtidSet.parse("")


@pytest.mark.parametrize("text", ["not-a-uuid:1", f"{A}", f"{A}:0", f"{A}:5-3", f"{A}:x"])
def test_what_is_not_a_gtid_set_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a GTID"):
        GtidSet.parse(text)


numbers = st.sets(st.tuples(st.sampled_from([A, B]), st.integers(1, 40)), max_size=30)


def as_text(gtids: set[tuple[str, int]]) -> str:
    return ",".join(f"{uuid}:{n}" for uuid, n in sorted(gtids))


def expand(gtids: GtidSet) -> set[tuple[str, int]]:
    return {(u, n) for u, spans in gtids.sources.items() for a, b in spans for n in range(a, b + 1)}


@hypothesis_settings(max_examples=60, deadline=None)
@given(numbers, numbers)
def test_set_operations_agree_with_python_sets(left: set[tuple[str, int]], right: set[tuple[str, int]]) -> None:
    a, b = GtidSet.parse(as_text(left)), GtidSet.parse(as_text(right))
    assert expand(a - b) == left - right
    assert expand(a | b) == left | right
    assert expand(a & b) == left & right
    assert (a <= b) == (left <= right)
    assert GtidSet.parse(str(a)) == a
