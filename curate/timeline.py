"""Pure interval math on ``(start_s, end_s)`` pairs. No I/O, no models; property-tested.

Intervals are half-open ``[start, end)`` in seconds. Functions take and return lists of tuples sorted by
start; they never mutate their input.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

Interval = tuple[float, float]


def normalize(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with empty and inverted intervals removed."""
    return sorted((float(s), float(e)) for s, e in intervals if e > s)


def merge(intervals: Iterable[Interval], max_gap_s: float = 0.0) -> list[Interval]:
    """Union of intervals; neighbours separated by at most ``max_gap_s`` are joined."""
    out: list[list[float]] = []
    for s, e in normalize(intervals):
        if out and s - out[-1][1] <= max_gap_s:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def total(intervals: Iterable[Interval]) -> float:
    """Total covered time (overlaps counted once)."""
    return sum(e - s for s, e in merge(intervals))


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """Pairwise intersection of two interval sets (each merged first)."""
    a, b = merge(a), merge(b)
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        s, e = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if e > s:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """The parts of ``a`` not covered by ``b``."""
    out: list[Interval] = []
    b = merge(b)
    for s, e in merge(a):
        cur = s
        for bs, be in b:
            if be <= cur or bs >= e:
                continue
            if bs > cur:
                out.append((cur, bs))
            cur = max(cur, be)
            if cur >= e:
                break
        if cur < e:
            out.append((cur, e))
    return out


def overlap(a: Interval, b: Interval) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def windows(duration_s: float, window_s: float, keep_partial: bool = False, start_s: float = 0.0) -> list[Interval]:
    """Consecutive ``window_s`` windows over ``[start_s, duration_s)``; a last partial window is dropped
    unless ``keep_partial``."""
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    out: list[Interval] = []
    n_full = int((duration_s - start_s + 1e-9) // window_s)
    for k in range(n_full):
        out.append((start_s + k * window_s, start_s + (k + 1) * window_s))
    last = start_s + n_full * window_s
    if keep_partial and duration_s - last > 1e-9:
        out.append((last, duration_s))
    return out


def halve(interval: Interval, max_s: float) -> list[Interval]:
    """Cut in half, recursively, until every part is at most ``max_s`` long (95 s, 30 → 4 × 23.75 s)."""
    s, e = interval
    if e - s <= max_s:
        return [(s, e)]
    mid = s + (e - s) / 2
    return halve((s, mid), max_s) + halve((mid, e), max_s)


def split_to_max(intervals: Sequence[Interval], max_s: float) -> list[Interval]:
    return [part for iv in intervals for part in halve(iv, max_s)]


def dilate(
    intervals: Iterable[Interval], pad_s: float, lo: float = float("-inf"), hi: float = float("inf")
) -> list[Interval]:
    """Grow every interval by ``pad_s`` on both sides (clamped to ``[lo, hi]``), then merge."""
    return merge((max(lo, s - pad_s), min(hi, e + pad_s)) for s, e in normalize(intervals))


def drop_short(intervals: Iterable[Interval], min_s: float) -> list[Interval]:
    """The merged intervals that last at least ``min_s``."""
    return [(s, e) for s, e in merge(intervals) if e - s >= min_s - 1e-9]


def split_at(interval: Interval, points: Iterable[float]) -> list[Interval]:
    """Cut ``interval`` at the ``points`` strictly inside it: consecutive pieces that tile it."""
    s, e = interval
    cuts = sorted({float(p) for p in points if s < p < e})
    edges = [s, *cuts, e]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def from_mask(starts: Sequence[float], ends: Sequence[float], mask: Sequence[bool]) -> list[Interval]:
    """The union of the cells ``[starts[i], ends[i])`` whose ``mask[i]`` holds."""
    return merge((s, e) for s, e, m in zip(starts, ends, mask, strict=True) if m)


def coverage(interval: Interval, intervals: Iterable[Interval]) -> float:
    """The share of ``interval`` covered by ``intervals`` (0 for an empty interval)."""
    length = interval[1] - interval[0]
    return total(intersect([interval], intervals)) / length if length > 0 else 0.0


__all__ = [
    "Interval",
    "normalize",
    "merge",
    "total",
    "intersect",
    "subtract",
    "overlap",
    "windows",
    "halve",
    "split_to_max",
    "dilate",
    "drop_short",
    "split_at",
    "from_mask",
    "coverage",
]
