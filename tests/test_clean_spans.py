"""clean_trim's calibrated decisions: smoothing and hysteresis (tables), span decisions per segment (tables and
properties: pieces and removed parts tile the segment, nothing bad and long is kept), re-joining one speaker's
pieces, the margins cut around turns (tables, properties), and the stage end to end on fake frame scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from curate import timeline
from curate.schema import Frames, Segment
from curate.stages.base import RecordingContext
from curate.stages.clean import CleanTrim
from curate.stages.clean_spans import around_turns, decide, hysteresis, median_smooth, pause_at, rejoin_allowed, spans
from curate.testing import fake_recording


@pytest.mark.parametrize(
    "values, width, expected",
    [
        ([0, 0, 1, 0, 0], 3, [0, 0, 0, 0, 0]),  # one frame flickering up is smoothed away
        ([0, 1, 1, 1, 0], 3, [0, 1, 1, 1, 0]),  # a run of three survives
        ([1, 0, 1, 1, 1], 3, [1, 1, 1, 1, 1]),  # a one-frame dip inside a run is filled
        ([0.2, 0.9], 1, [0.2, 0.9]),  # width 1: unchanged
        ([0, 0, 1, 0], 2, [0, 0, 0, 0]),  # an even width is made odd
    ],
)
def test_median_smooth(values, width, expected) -> None:
    assert median_smooth(values, width).tolist() == pytest.approx(expected)


@pytest.mark.parametrize(
    "values, high, low, expected",
    [
        ([0.0, 0.3, 0.6, 0.3, 0.0], 0.5, 0.2, [0, 1, 1, 1, 0]),  # the run grows to where it falls below low
        ([0.0, 0.3, 0.4, 0.3, 0.0], 0.5, 0.2, [0, 0, 0, 0, 0]),  # never above high: nothing
        ([0.6, 0.1, 0.3, 0.6], 0.5, 0.2, [1, 0, 1, 1]),  # two runs
        ([0.6, 0.4], 0.5, 0.5, [1, 0]),  # low == high: a plain threshold
    ],
)
def test_hysteresis(values, high, low, expected) -> None:
    assert hysteresis(values, high, low).astype(int).tolist() == expected


def test_spans_drop_short_runs_and_pad() -> None:
    starts = np.arange(20) * 0.5
    v = [0.0] * 4 + [0.9] + [0.0] * 5 + [0.9] * 4 + [0.0] * 6  # one frame at 2.0 s; a 2 s run at 5.0 s
    assert spans(starts, starts + 0.5, v, 0.5, min_s=1.0) == [(5.0, 7.0)]
    assert spans(starts, starts + 0.5, v, 0.5, min_s=1.0, pad_s=0.25) == [(4.75, 7.25)]
    assert spans(starts, starts + 0.5, v, 0.5, smooth_frames=3) == [(5.0, 7.0)]


# --- one segment: edges trimmed, long interior spans cut, short ones kept -------------------------------------


@pytest.mark.parametrize(
    "bad, touch, min_split, pieces, removed",
    [
        ({}, 0.5, 1.0, [(0, 10)], []),
        ({"music": [(0.3, 2.0)]}, 0.5, 1.0, [(2, 10)], [((0, 2), "music")]),  # near the start: trim through it
        ({"music": [(8.0, 9.7)]}, 0.5, 1.0, [(0, 8)], [((8, 10), "music")]),  # near the end
        ({"music": [(0.8, 2.0)]}, 0.5, 1.0, [(0, 0.8), (2, 10)], [((0.8, 2), "music")]),  # interior, long: split
        ({"music": [(4.0, 4.6)]}, 0.5, 1.0, [(0, 10)], []),  # interior, short: stays
        ({"noise": [(4.0, 4.6)]}, 0.5, 0.5, [(0, 4), (4.6, 10)], [((4, 4.6), "noise")]),  # … unless min_split allows
        ({"overlap": [(-1, 11)]}, 0.5, 1.0, [], [((0, 10), "overlap")]),  # all of it
        # both edges touched by one reason each; attribution order music before overlap
        (
            {"music": [(0, 1)], "overlap": [(8.6, 9.9)]},
            0.5,
            1.0,
            [(1, 8.6)],
            [((0, 1), "music"), ((8.6, 10), "overlap")],
        ),
    ],
)
def test_decide(bad, touch, min_split, pieces, removed) -> None:
    got, gone = decide((0.0, 10.0), bad, (), touch_s=touch, min_split_s=min_split)
    assert got == [tuple(map(float, p)) for p in pieces]
    assert [((float(a), float(b)), r) for (a, b), r in gone] == [((float(a), float(b)), r) for (a, b), r in removed]


times = st.floats(0, 60, allow_nan=False, allow_infinity=False)
ivs = st.lists(st.tuples(times, times).map(lambda t: (min(t), max(t))), max_size=6)


@given(
    st.tuples(times, times).map(lambda t: (min(t), max(t) + 0.5)),
    ivs,
    ivs,
    st.lists(times, max_size=4),
    st.floats(0, 3),
    st.floats(0, 3),
)
def test_decide_tiles_the_segment_and_keeps_no_long_bad_span(span, music, overlap, changes, touch, min_split) -> None:
    bad = {"music": music, "overlap": overlap}
    pieces, removed = decide(span, bad, changes, touch_s=touch, min_split_s=min_split)
    parts = sorted([*pieces, *(p for p, _ in removed)])
    assert sum(e - s for s, e in parts) == pytest.approx(span[1] - span[0], abs=1e-6)  # a tiling: no overlap …
    assert timeline.total(parts) == pytest.approx(span[1] - span[0], abs=1e-6)  # … and no hole
    for reason_spans in bad.values():  # what a piece still holds of a bad span is a short interior part
        for a, b in timeline.intersect([span], reason_spans):
            inside = timeline.total(timeline.intersect(pieces, [(a, b)]))
            assert inside == pytest.approx(0.0, abs=1e-6) or (
                b - a < min_split and a > span[0] + touch and b < span[1] - touch
            )


@given(st.tuples(times, times).map(lambda t: (min(t), max(t) + 0.5)), ivs)
def test_decide_without_tolerance_is_plain_subtraction(span, music) -> None:
    pieces, _ = decide(span, {"music": music}, ())
    assert pieces == timeline.subtract([span], music)


# --- re-joining ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "left, right, same, bad, changes, ok",
    [
        ((0, 2), (2.5, 4), True, [], [], True),  # a short clean gap, one speaker
        ((0, 2), (2.5, 4), False, [], [], False),  # two speakers
        ((0, 2), (4, 6), True, [], [], False),  # gap longer than join_gap_s
        ((0, 2), (2.5, 4), True, [(2.1, 2.4)], [], False),  # a bad span in the gap (what was cut stays cut)
        ((0, 2), (2, 4), True, [], [2.0], False),  # a turn between them
        ((0, 20), (20.5, 35), True, [], [], False),  # longer than join_max_s together
    ],
)
def test_rejoin_allowed(left, right, same, bad, changes, ok) -> None:
    assert rejoin_allowed(bad, changes, join_gap_s=1.0, join_max_s=30.0)(left, right, same) is ok


def _tags(music: list[float], hop: float = 0.48) -> Frames:
    n = len(music)
    start = np.arange(n) * hop
    z = np.zeros(n)
    v = {"speech": np.full(n, 0.9), "music": np.asarray(music, float), "vocal_music": z, "noise": z}
    return Frames("tags", start, start + 2 * hop, {**v, "energy_db": np.full(n, -20.0)})


def test_clean_trim_trims_tolerates_and_rejoins() -> None:
    """A 1-frame music flicker inside speech stays (smoothed away); a music bed at the start is trimmed; two
    short pieces of one speaker 0.4 s apart become one segment again and pass a 3 s minimum together."""
    ctx = RecordingContext(fake_recording("r", 30.0))
    music = (
        [0.9] * 6 + [0.0] * 14 + [0.9] + [0.0] * 42
    )  # a bed over the first 3.12 s of cells; a flicker at 9.84-10.32 s
    ctx.frames["tags"] = _tags(music)
    segs = [
        Segment.new("r", "/a.wav", 0.0, 12.0, "v", speaker="A"),
        Segment.new("r", "/a.wav", 14.0, 16.0, "v", speaker="B"),
        Segment.new("r", "/a.wav", 16.4, 18.0, "v", speaker="B"),
    ]
    stage = CleanTrim(overlap=None, change=None, pad_s=0.0, smooth_s=1.44, touch_s=0.5, min_split_s=1.0, join_gap_s=1.0)
    res = stage.process(ctx, segs)
    got = [(round(s.start_s, 2), round(s.end_s, 2), s.speaker) for s in res.segments]
    assert got == [(3.12, 12.0, "A"), (14.0, 18.0, "B")]
    assert [(r.reason, round(r.segment.end_s, 2)) for r in res.rejected] == [("music", 3.12)]
    raw = CleanTrim(overlap=None, change=None, pad_s=0.0, min_split_s=0.0, hysteresis=1.0).process(
        ctx, segs
    )  # frame rule
    assert len(raw.segments) == 4


def test_pauses_found_on_the_speakers_grid_split_two_turns() -> None:
    """A 0.4 s pause between two voices is below the tags' 0.48 s cells but 4 frames of the speakers grid: with
    pauses_from=speakers it is cut (a no_speech row) and the pieces are not re-joined across it."""
    ctx = RecordingContext(fake_recording("r", 10.0))
    ctx.frames["tags"] = _tags([0.0] * 21)
    speech = np.ones(100)
    speech[50:54] = 0.0  # 5.0-5.4 s
    z = np.zeros(100)
    start = np.arange(100) * 0.1
    ctx.frames["speakers"] = Frames("speakers", start, start + 0.1, {"speech": speech, "overlap": z, "change": z})
    seg = [Segment.new("r", "/a.wav", 0.0, 10.0, "v")]
    common = dict(music=None, vocal_music=None, noise=None, overlap=None, change=None, speech=0.5, min_nonspeech_s=0.3,
                  min_split_s=0.0)  # fmt: skip
    res = CleanTrim(**common, pauses_from="speakers", join_gap_s=1.0).process(ctx, seg)
    assert [(s.start_s, s.end_s) for s in res.segments] == [(0.0, pytest.approx(5.0)), (pytest.approx(5.4), 10.0)]
    assert [r.reason for r in res.rejected] == ["no_speech"]
    assert len(CleanTrim(**common, pauses_from="tags").process(ctx, seg).segments) == 1


# --- margins around turns: the overlapped tails the overlap frames miss ----------------------------------------


@pytest.mark.parametrize(
    "changes, margin, found, expected",
    [
        ([5.0], 0.7, [], [(4.3, 5.7)]),
        ([5.0, 6.0], 0.7, [], [(4.3, 6.7)]),  # two close turns: one span
        ([0.2, 9.0], 0.5, [], [(0.0, 0.7), (8.5, 9.5)]),  # clamped at the recording's start
        ([5.0, 9.0], 0.7, [(4.8, 5.4)], [(8.3, 9.7)]),  # a turn inside an overlap the frames found: left alone
        ([5.0], 0.7, [(4.0, 5.0)], []),  # … also at its edge
        ([5.0], 0.7, [(5.1, 6.0)], [(4.3, 5.7)]),  # … but not beside it
        ([5.0], 0.0, [], []),  # off
        ([], 0.7, [], []),
    ],
)
def test_around_turns(changes, margin, found, expected) -> None:
    assert around_turns(changes, margin, found=found) == [pytest.approx(iv) for iv in expected]


@given(st.lists(times, max_size=6), st.floats(0.01, 2))
def test_around_turns_covers_each_turn_and_nothing_far_from_one(changes, margin) -> None:
    got = around_turns(changes, margin)
    assert got == timeline.merge(got)  # sorted, disjoint
    for c in changes:  # every turn's margin is inside the spans …
        want = (max(0.0, c - margin), c + margin)
        assert timeline.total(timeline.intersect(got, [want])) == pytest.approx(want[1] - want[0], abs=1e-6)
    for a, b in got:  # … and every span edge is a margin away from a turn
        assert any(abs(a - (c - margin)) < 1e-6 or a == 0.0 for c in changes)
        assert any(abs(b - (c + margin)) < 1e-6 for c in changes)


@pytest.mark.parametrize(
    "speech, point, within, expected",
    [
        ([1] * 10, 0.5, 0.3, 0.0),  # speech all around
        ([1] * 4 + [0] * 3 + [1] * 3, 0.55, 0.3, 0.3),  # a 0.3 s pause at the point
        ([1] * 4 + [0] * 3 + [1] * 3, 0.15, 0.1, 0.0),  # … too far away
        ([0] * 2 + [1] * 6 + [0] * 2, 0.5, 0.35, 0.2),  # the longest pause within reach
    ],
)
def test_pause_at(speech, point, within, expected) -> None:
    edges = np.round(np.arange(len(speech) + 1) * 0.1, 6)  # cells that tile
    assert pause_at([point], edges[:-1], edges[1:], speech, within) == [pytest.approx(expected)]


def test_turn_cut_removes_the_tails_of_a_turn_in_speech_not_one_in_a_pause() -> None:
    """Two turns: at 3 s inside continuous speech (two voices run into each other) and at 7 s in the middle of a
    0.8 s pause. turn_cut_s cuts 0.7 s either side of the first as overlap; the second sits in a pause longer
    than turn_cut_pause_s and costs nothing."""
    ctx = RecordingContext(fake_recording("r", 10.0))
    ctx.frames["tags"] = _tags([0.0] * 21)
    start = np.arange(100) * 0.1
    speech, change, z = np.ones(100), np.zeros(100), np.zeros(100)
    speech[66:74] = 0.0  # 6.6-7.4 s
    change[29:31] = 0.9  # 2.9-3.1 s: a turn at 3.0
    change[69:71] = 0.9  # a turn at 7.0
    ctx.frames["speakers"] = Frames("speakers", start, start + 0.1, {"speech": speech, "overlap": z, "change": change})
    seg = [Segment.new("r", "/a.wav", 0.0, 10.0, "v")]
    common = dict(music=None, vocal_music=None, noise=None, overlap=0.5, change=0.5, speech=0.5, min_nonspeech_s=0.3,
                  pauses_from="speakers", pad_s=0.0, min_split_s=0.0)  # fmt: skip
    res = CleanTrim(**common, turn_cut_s=0.7, turn_cut_pause_s=0.4).process(ctx, seg)
    assert [(s.start_s, s.end_s) for s in res.segments] == [
        (0.0, pytest.approx(2.3)), (pytest.approx(3.7), pytest.approx(6.6)), (pytest.approx(7.4), 10.0)
    ]  # fmt: skip
    assert [(r.reason, round(r.segment.start_s, 2)) for r in res.rejected] == [("overlap", 2.3), ("no_speech", 6.6)]
    found = np.zeros(100)
    found[28:32] = 0.9  # the overlap frames do see 2.8-3.2 s: that overlap is cut (pad_s 0), no margin around it
    ctx.frames["speakers"] = Frames(
        "speakers", start, start + 0.1, {"speech": speech, "overlap": found, "change": change}
    )
    seen = CleanTrim(**common, turn_cut_s=0.7, turn_cut_pause_s=0.4).process(ctx, seg)
    got = [(r.reason, round(r.segment.start_s, 2), round(r.segment.end_s, 2)) for r in seen.rejected]
    assert got == [("overlap", 2.8, 3.2), ("no_speech", 6.6, 7.4)]
    ctx.frames["speakers"] = Frames("speakers", start, start + 0.1, {"speech": speech, "overlap": z, "change": change})
    every = CleanTrim(**common, turn_cut_s=0.7).process(ctx, seg)  # no pause rule: both turns cut
    assert [r.reason for r in every.rejected] == ["overlap", "overlap"]
    off = CleanTrim(**common).process(ctx, seg)  # off: split at the turn, nothing cut around it
    assert [(s.start_s, s.end_s) for s in off.segments][:2] == [(0.0, pytest.approx(3.0)), (pytest.approx(3.0), 6.6)]
