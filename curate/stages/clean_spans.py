"""Calibrated decisions of ``clean_trim`` (pure functions, no I/O): frame scores → bad *spans* → per-segment cuts
→ re-joined pieces.

1. **Smooth** a score track with a running median over ``smooth_s`` (one 0.48 s YAMNet frame flickering above a
   threshold inside real speech is not a music bed), then **hysteresis**: a bad run starts where the smoothed
   score exceeds the threshold and lasts while it stays above ``hysteresis`` × the threshold.
2. **Spans, not frames**: runs shorter than ``min_bad_s`` are dropped; the rest grow by ``pad_s``.
3. **Per segment**: a bad span within ``touch_s`` of an edge trims that edge (everything from the edge through
   the span goes); an interior span is cut out (the segment splits) only when it lasts ``min_split_s`` or more —
   a shorter one stays inside the segment. What remains splits at speaker turns.
4. **Turns** come from two tracks: the segmentation model's local speakers (a turn's plateau) and a speaker
   encoder's voice distance left/right of each moment: one turn per run above the threshold, at the run's peak
   (:func:`peaks`), moved into the deepest pause nearby when there is one (:func:`snap`). Speech within a
   margin of a turn can be cut as overlap (:func:`around_turns`): the overlapped tails the overlap frames miss.
5. **Re-join**: consecutive pieces of one speaker whose gap is at most ``join_gap_s`` and holds no bad span and no
   turn become one segment again (up to ``join_max_s``), before the length filter drops short pieces.
6. **Beds under speech**: YAMNet hardly scores a noise bed once a voice is over it, but the bed is heard alone
   before or after the voice. A noise span heard alone (:func:`heard_alone`) grows over the neighbouring frames
   whose *noise floor* (the quiet 10 ms moments of a window: :func:`noise_floor_db`, running minimum over
   ``bed_window_s``) stays within ``bed_margin_db`` of the span's own floor: the bed goes on under the speech
   (:func:`extend_beds`). Clean speech next to noise has its pauses, so its floor drops far below the noise's
   and the span stops there. Only a steady noise is a bed: its floor must lie ``bed_min_db`` above the
   recording's quietest (5th percentile). A voice of at most ``bed_bridge_s`` between two spans of one bed heard
   alone is spoken over it (:func:`bridge_beds`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from curate import timeline

#: the order bad spans are attributed in when two reasons overlap (a removed part is counted once)
ORDER = ("music", "vocal_music", "noise", "overlap", "no_speech")


def median_smooth(values: Sequence[float], width: int) -> np.ndarray:
    """Running median over ``width`` frames (odd; 1 or less: unchanged), edges padded with the edge value."""
    v = np.asarray(values, float)
    if width <= 1 or v.size == 0:
        return v
    width += (width + 1) % 2  # odd
    half = width // 2
    padded = np.pad(v, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)


def hysteresis(values: Sequence[float], high: float, low: float) -> np.ndarray:
    """Frames inside a run of ``value > low`` that holds at least one ``value > high`` (``low <= high``)."""
    v = np.asarray(values, float)
    on, weak = v > high, v > min(low, high)
    out = np.zeros(v.size, bool)
    for i, j in _runs(weak):
        if on[i:j].any():
            out[i:j] = True
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The maximal runs of True in ``mask``, as half-open index pairs ``(i, j)``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], np.asarray(mask, np.int8), [0]))))
    return [(int(i), int(j)) for i, j in zip(edges[::2], edges[1::2], strict=True)]


def spans(
    starts: Sequence[float],
    ends: Sequence[float],
    values: Sequence[float],
    threshold: float,
    *,
    smooth_frames: int = 1,
    hysteresis_ratio: float = 1.0,
    min_s: float = 0.0,
    pad_s: float = 0.0,
) -> list[timeline.Interval]:
    """Bad spans of one score track over its frame cells: smoothed, hysteresis, short runs dropped, padded."""
    v = median_smooth(values, smooth_frames)
    runs = timeline.from_mask(starts, ends, hysteresis(v, threshold, threshold * hysteresis_ratio))
    return timeline.dilate(timeline.drop_short(runs, min_s), pad_s, lo=0.0)


def energy_db(audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """The energy of every whole 10 ms of ``audio``, dBFS."""
    hop = sr // 100
    n = audio.size // hop
    sub = audio[: n * hop].astype(np.float64).reshape(n, hop) if n else np.zeros((0, hop))
    return 10 * np.log10(np.mean(np.square(sub), axis=1) + 1e-10)


def noise_floor_db(
    audio: np.ndarray, starts: Sequence[float], ends: Sequence[float], sr: int = 16000, q: float = 10.0
) -> np.ndarray:
    """Per frame ``[start, end)``: the ``q``-th percentile of its 10 ms energies (dBFS), its quietest moments."""
    db = energy_db(audio, sr)
    out = np.full(len(starts), -100.0)
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        cell = db[int(a * 100) : max(int(a * 100) + 1, int(b * 100))]
        if cell.size:
            out[i] = float(np.percentile(cell, q))
    return out


def running_min(values: Sequence[float], width: int) -> np.ndarray:
    """Running minimum over ``width`` frames (made odd; 1 or less: unchanged), edges padded with the edge value."""
    v = np.asarray(values, float)
    if width <= 1 or v.size == 0:
        return v
    half = (width + (width + 1) % 2) // 2
    return np.lib.stride_tricks.sliding_window_view(np.pad(v, half, mode="edge"), 2 * half + 1).min(axis=1)


def running_max(values: Sequence[float], width: int) -> np.ndarray:
    """Running maximum over ``width`` frames (as :func:`running_min`)."""
    return -running_min(-np.asarray(values, float), width)


def energy_pauses(
    audio: np.ndarray, min_s: float, drop_db: float, context_s: float = 1.0, sr: int = 16000
) -> list[timeline.Interval]:
    """Pauses heard in the audio: runs of at least ``min_s`` whose 10 ms energies all lie ``drop_db`` or more under
    the loudest 10 ms within ``context_s`` either side. A pause between two voices that the segmentation model's
    5 s windows smooth over (its speech score stays high across 0.6 s of silence) is found here; a bed under the
    voices fills it, so no pause is found there."""
    db = energy_db(audio, sr)
    if db.size == 0 or min_s <= 0:
        return []
    low = db < running_max(db, 2 * round(context_s * 100) + 1) - drop_db
    edges = np.arange(db.size + 1) / 100  # cells that meet exactly, so a run of them merges
    return timeline.drop_short(timeline.from_mask(edges[:-1], edges[1:], low), min_s)


def extend_beds(
    runs: Sequence[timeline.Interval],
    starts: Sequence[float],
    ends: Sequence[float],
    floor_db: Sequence[float],
    margin_db: float,
    level_db: Sequence[float] | None = None,
    min_level_db: float = float("-inf"),
) -> list[timeline.Interval]:
    """Each run grows, cell by cell, over its neighbours whose ``floor_db`` is at least the run's own level (the
    median ``level_db``, default ``floor_db``, of the cells inside it) minus ``margin_db``: a bed heard alone goes
    on under the voice next to it. A run whose level is below ``min_level_db`` (no steady noise: birds calling
    in a quiet room) does not grow. Cells tile the recording; the result holds every run and is merged."""
    a, b, f = np.asarray(starts, float), np.asarray(ends, float), np.asarray(floor_db, float)
    lv = f if level_db is None else np.asarray(level_db, float)
    mid = (a + b) / 2
    out = list(runs)
    for s, e in runs:
        inside = np.flatnonzero((mid >= s) & (mid < e))
        if inside.size == 0:
            continue
        level = float(np.median(lv[inside]))
        if level < min_level_db:
            continue
        low = level - margin_db
        i, j = int(inside[0]), int(inside[-1])
        while i > 0 and f[i - 1] >= low:
            i -= 1
        while j < f.size - 1 and f[j + 1] >= low:
            j += 1
        out.append((min(s, float(a[i])), max(e, float(b[j]))))
    return timeline.merge(out)


def heard_alone(
    runs: Sequence[timeline.Interval],
    starts: Sequence[float],
    ends: Sequence[float],
    speech: Sequence[float],
    limit: float = 0.5,
) -> list[timeline.Interval]:
    """The runs whose cells mostly hold no speech (median speech score below ``limit``): a noise heard alone, not a
    flicker of a noise class over a voice."""
    a, b, v = np.asarray(starts, float), np.asarray(ends, float), np.asarray(speech, float)
    mid = (a + b) / 2
    out = []
    for s, e in runs:
        inside = (mid >= s) & (mid < e)
        if inside.any() and float(np.median(v[inside])) < limit:
            out.append((s, e))
    return out


def bridge_beds(
    runs: Sequence[timeline.Interval],
    starts: Sequence[float],
    ends: Sequence[float],
    speech: Sequence[float],
    max_gap_s: float,
) -> list[timeline.Interval]:
    """``runs`` plus the gap between two consecutive runs *heard alone* (:func:`heard_alone`) when it lasts at most
    ``max_gap_s``: a short voice with the same bed heard alone on both sides is spoken over it. Merged."""
    alone = heard_alone(timeline.merge(runs), starts, ends, speech)
    gaps = [(x[1], y[0]) for x, y in itertools.pairwise(alone) if 0 < y[0] - x[1] <= max_gap_s]
    return timeline.merge([*runs, *gaps])


def peaks(
    starts: Sequence[float],
    ends: Sequence[float],
    values: Sequence[float],
    threshold: float,
    mask: Sequence[bool] | None = None,
) -> list[float]:
    """One point per run of cells whose value exceeds ``threshold`` (and ``mask`` holds): the middle of the run's
    highest stretch of equal cells (the first, on ties)."""
    v = np.asarray(values, float)
    a, b = np.asarray(starts, float), np.asarray(ends, float)
    on = v > threshold if mask is None else (v > threshold) & np.asarray(mask, bool)
    out: list[float] = []
    for i, j in _runs(on):
        top = i + int(np.argmax(v[i:j]))
        k = top
        while k + 1 < j and v[k + 1] == v[top]:
            k += 1
        out.append(float((a[top] + b[k]) / 2))
    return out


def snap(
    points: Sequence[float],
    starts: Sequence[float],
    ends: Sequence[float],
    values: Sequence[float],
    within_s: float,
    below: float,
) -> list[float]:
    """Each point moved to the middle of the lowest cell whose middle lies within ``within_s`` of it, when that
    cell's value is below ``below`` (a pause between two voices); else left where it is. Sorted, no repeats."""
    a, b = np.asarray(starts, float), np.asarray(ends, float)
    mid, v = (a + b) / 2, np.asarray(values, float)
    out = set()
    for p in points:
        near = np.flatnonzero(np.abs(mid - p) <= within_s + 1e-9)
        if near.size:
            low = near[np.argmin(v[near])]
            out.add(float(mid[low]) if v[low] < below else float(p))
        else:
            out.add(float(p))
    return sorted(out)


def decide(
    span: timeline.Interval,
    bad: dict[str, list[timeline.Interval]],
    changes: Sequence[float] = (),
    *,
    touch_s: float = 0.0,
    min_split_s: float = 0.0,
    edge_s: float = 0.3,
) -> tuple[list[timeline.Interval], list[tuple[timeline.Interval, str]]]:
    """One segment: (kept pieces, removed parts with their reason). Pieces and removed parts tile ``span``.

    A bad part within ``touch_s`` of an edge removes everything from that edge through it; an interior part is
    removed when it lasts at least ``min_split_s``; what is kept splits at the ``changes`` more than ``edge_s``
    inside a piece."""
    s0, s1 = span
    removed: list[tuple[timeline.Interval, str]] = []
    taken: list[timeline.Interval] = []
    for reason in ORDER:
        for a, b in timeline.intersect([span], bad.get(reason, [])):
            if a <= s0 + touch_s:
                cut = (s0, b)
            elif b >= s1 - touch_s:
                cut = (a, s1)
            elif b - a >= min_split_s:
                cut = (a, b)
            else:
                continue  # a short interior span stays inside the segment
            parts = timeline.subtract([cut], taken)
            removed += [(p, reason) for p in parts]
            taken = timeline.merge([*taken, *parts])
    pieces = []
    for a, b in timeline.subtract([span], taken):
        pieces += timeline.split_at((a, b), [c for c in changes if a + edge_s < c < b - edge_s])
    return pieces, sorted(removed)


def around_turns(
    changes: Sequence[float], margin_s: float, lo: float = 0.0, found: Sequence[timeline.Interval] = ()
) -> list[timeline.Interval]:
    """The spans within ``margin_s`` of a turn (merged, clamped at ``lo``): where two voices meet, the second one
    often starts before the first stops, and the overlap frames miss the short tails either side. Turns inside
    or at the edge of a ``found`` span (an overlap the frames did find, cut with its own pad) are left alone."""
    if margin_s <= 0:
        return []
    free = [c for c in changes if not any(a - 1e-9 <= c <= b + 1e-9 for a, b in found)]
    return timeline.merge((max(lo, c - margin_s), c + margin_s) for c in free)


def pause_at(
    points: Sequence[float],
    starts: Sequence[float],
    ends: Sequence[float],
    values: Sequence[float],
    within_s: float,
    below: float = 0.5,
) -> list[float]:
    """Per point, the length of the longest run of cells with a value below ``below`` (a pause) that reaches
    within ``within_s`` of it (0.0: speech all around the point)."""
    runs = timeline.from_mask(starts, ends, np.asarray(values, float) < below)
    return [max((b - a for a, b in runs if a <= p + within_s and b >= p - within_s), default=0.0) for p in points]


def rejoin_allowed(
    bad: list[timeline.Interval],
    changes: Sequence[float],
    join_gap_s: float,
    join_max_s: float,
    apart: Sequence[timeline.Interval] = (),
) -> Callable[[timeline.Interval, timeline.Interval, bool], bool]:
    """The re-join rule over a recording's bad spans and turns: ``ok(left, right, same_speaker)``. ``apart``:
    where the voices on either side differ; no join across a gap that touches one (even a gap of no length)."""
    merged = timeline.merge(bad)
    points = sorted(changes)
    differ = timeline.merge(apart)

    def ok(left: timeline.Interval, right: timeline.Interval, same_speaker: bool) -> bool:
        gap = (left[1], right[0])
        if not same_speaker or gap[1] - gap[0] > join_gap_s or right[1] - left[0] > join_max_s:
            return False
        if gap[1] > gap[0] and timeline.total(timeline.intersect([gap], merged)) > 0:
            return False
        if any(a <= gap[1] + 1e-6 and b >= gap[0] - 1e-6 for a, b in differ):
            return False
        return not any(left[1] - 1e-6 <= c <= right[0] + 1e-6 for c in points)

    return ok


__all__ = [
    "ORDER",
    "around_turns",
    "bridge_beds",
    "decide",
    "extend_beds",
    "heard_alone",
    "hysteresis",
    "median_smooth",
    "noise_floor_db",
    "pause_at",
    "peaks",
    "rejoin_allowed",
    "running_min",
    "snap",
    "spans",
]
