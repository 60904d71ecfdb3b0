"""Interval math: table tests for the edges and hypothesis properties for the algebra."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from curate import timeline

spans = st.lists(
    st.tuples(st.floats(0, 1000, allow_nan=False), st.floats(0, 50, allow_nan=False)).map(
        lambda t: (t[0], t[0] + t[1])
    ),
    max_size=30,
)


@pytest.mark.parametrize(
    ("duration", "window", "partial", "expected"),
    [
        (90.0, 30.0, False, [(0, 30), (30, 60), (60, 90)]),
        (95.0, 30.0, False, [(0, 30), (30, 60), (60, 90)]),
        (95.0, 30.0, True, [(0, 30), (30, 60), (60, 90), (90, 95)]),
        (29.9, 30.0, False, []),
        (0.0, 30.0, False, []),
    ],
)
def test_windows(duration, window, partial, expected):
    assert timeline.windows(duration, window, keep_partial=partial) == expected


def test_halve_95s_gives_four_equal_parts():
    parts = timeline.halve((0.0, 95.0), 30.0)
    assert [round(e - s, 4) for s, e in parts] == [23.75] * 4
    assert parts[0][0] == 0.0 and parts[-1][1] == 95.0


@pytest.mark.parametrize(
    ("intervals", "gap", "expected"),
    [
        ([(0, 1), (1, 2)], 0.0, [(0, 2)]),
        ([(0, 1), (1.5, 2)], 0.0, [(0, 1), (1.5, 2)]),
        ([(0, 1), (1.5, 2)], 0.5, [(0, 2)]),
        ([(3, 4), (0, 1), (0.5, 2)], 0.0, [(0, 2), (3, 4)]),
        ([(1, 1), (2, 1)], 0.0, []),
    ],
)
def test_merge_table(intervals, gap, expected):
    assert timeline.merge(intervals, gap) == expected


@given(spans)
def test_merge_is_disjoint_sorted_and_preserves_coverage(ivs):
    merged = timeline.merge(ivs)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(merged))
    assert timeline.merge(merged) == merged
    for s, e in ivs:
        if e > s:
            assert any(ms <= s and e <= me for ms, me in merged)


@given(spans, spans)
def test_subtract_and_intersect_partition_a(a, b):
    inter = timeline.total(timeline.intersect(a, b))
    rest = timeline.total(timeline.subtract(a, b))
    assert inter + rest == pytest.approx(timeline.total(a), abs=1e-6)
    assert timeline.total(timeline.intersect(timeline.subtract(a, b), b)) == pytest.approx(0.0, abs=1e-9)


@given(st.floats(0.01, 500), st.floats(1, 60))
def test_halve_parts_cover_and_respect_max(length, max_s):
    parts = timeline.halve((10.0, 10.0 + length), max_s)
    assert all(e - s <= max_s + 1e-9 for s, e in parts)
    assert sum(e - s for s, e in parts) == pytest.approx(length)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))


@given(st.floats(0, 10000), st.floats(0.5, 100))
def test_windows_are_full_and_consecutive(duration, window):
    w = timeline.windows(duration, window)
    assert all(abs((e - s) - window) < 1e-6 for s, e in w)
    assert len(w) == int((duration + 1e-9) // window)
