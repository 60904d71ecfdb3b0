"""Turns the segmentation model's 5 s windows blur: pauses heard in the audio (``clean_spans.energy_pauses``, a
table and a property) that split a segment, and the turn-evidence runs ``change_cut`` cuts out (the tail of one
voice under the next), sparing the turns with a pause in them; the params are validated and calibrated."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import calibrate
from curate.errors import ConfigError
from curate.schema import Frames, Segment
from curate.stages.base import RecordingContext
from curate.stages.clean import CleanTrim
from curate.stages.clean_spans import energy_pauses, running_max
from curate.testing import fake_recording

SR = 16000


def _voice(seconds: float, rng: np.random.Generator, level: float = 0.1) -> np.ndarray:
    """Syllables: 0.2 s of a buzz, 0.1 s gaps (shorter than any pause asked for below); 1.4 s ends on a syllable."""
    t = np.arange(round(seconds * SR)) / SR
    on = (t % 0.3) < 0.2
    return (level * np.sign(np.sin(2 * np.pi * 150 * t)) * on + rng.normal(0, 1e-4, t.size)).astype(np.float32)


def _quiet(seconds: float, rng: np.random.Generator, level: float = 1e-4) -> np.ndarray:
    return (rng.normal(0, level, round(seconds * SR))).astype(np.float32)


def test_running_max_mirrors_running_min() -> None:
    assert running_max([-60, -20, -60, -60, -60], 3).tolist() == [-20, -20, -20, -60, -60]


@pytest.mark.parametrize(
    ("pieces", "min_s", "expected"),
    [
        # (voice | quiet | bed, seconds) … → pauses (s)
        ([("voice", 2.0), ("quiet", 0.6), ("voice", 2.0)], 0.3, [(2.0, 2.6)]),
        ([("voice", 2.0), ("quiet", 0.6), ("voice", 2.0)], 0.8, []),  # shorter than asked
        ([("voice", 2.0), ("quiet", 0.2), ("voice", 2.0)], 0.3, []),
        ([("voice", 2.0), ("bed", 0.6), ("voice", 2.0)], 0.3, []),  # a bed 15 dB under the voices fills the pause
        (
            [("voice", 1.4), ("quiet", 0.5), ("voice", 1.4), ("quiet", 0.9), ("voice", 1.0)],
            0.3,
            [(1.4, 1.9), (3.3, 4.2)],
        ),
    ],
)
def test_energy_pauses(pieces, min_s, expected) -> None:
    rng = np.random.default_rng(0)
    make = {"voice": _voice, "quiet": _quiet, "bed": lambda s, r: _quiet(s, r, 0.1 * 10 ** (-15 / 20))}
    x = np.concatenate([make[k](s, rng) for k, s in pieces])
    if any(k == "bed" for k, _ in pieces):
        x = x + _quiet(x.size / SR, rng, 0.1 * 10 ** (-15 / 20))  # the bed runs under the voices too
    got = energy_pauses(x, min_s, 30.0)
    assert len(got) == len(expected)
    for (a, b), (c, d) in zip(got, expected, strict=True):
        assert a == pytest.approx(c, abs=0.02) and b == pytest.approx(d, abs=0.02)


@settings(max_examples=30, deadline=None)
@given(gap=st.floats(0.35, 2.0), min_s=st.floats(0.15, 0.3), level=st.floats(0.01, 0.5))
def test_a_silent_gap_between_voices_is_one_pause_whatever_their_level(gap, min_s, level) -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([_voice(1.4, rng, level), _quiet(gap, rng), _voice(1.4, rng, level)])
    got = energy_pauses(x, min_s, 30.0)
    assert len(got) == 1
    assert got[0][0] == pytest.approx(1.4, abs=0.02) and got[0][1] == pytest.approx(1.4 + gap, abs=0.02)


def _speakers(change: list[tuple[float, float, float]], n: int = 100) -> Frames:
    """0.1 s frames over ``n / 10`` s: speech everywhere, turn evidence ``value`` over each (start, end)."""
    start = np.arange(n) * 0.1
    ch = np.zeros(n)
    for a, b, v in change:
        ch[(start >= a - 1e-9) & (start < b - 1e-9)] = v
    return Frames("speakers", start, start + 0.1, {"speech": np.ones(n), "overlap": np.zeros(n), "change": ch})


def _flat(spans) -> list[float]:
    return [x for span in spans for x in span]


def _ctx(tmp_path, audio: np.ndarray, speakers: Frames) -> RecordingContext:
    path = tmp_path / "r.flac"
    sf.write(path, audio, SR)
    ctx = RecordingContext(dataclasses.replace(fake_recording("r", audio.size / SR), audio_path=str(path)))
    ctx.frames["speakers"] = speakers
    return ctx


COMMON = dict(music=None, vocal_music=None, noise=None, overlap=None, change=None, pad_s=0.0, min_split_s=0.0)


def test_change_cut_cuts_the_turn_evidence_as_overlap(tmp_path) -> None:
    """A fast turn with no pause at 4.6-5.4 s: the run is cut out (the tails of both voices) and no piece spans it."""
    rng = np.random.default_rng(1)
    ctx = _ctx(tmp_path, _voice(10.0, rng), _speakers([(4.6, 5.4, 0.8)]))
    seg = [Segment.new("r", "/a.wav", 0.0, 10.0, "v")]
    res = CleanTrim(**COMMON, change_cut=0.5).process(ctx, seg)
    assert _flat((s.start_s, s.end_s) for s in res.segments) == pytest.approx([0.0, 4.6, 5.4, 10.0])
    assert [r.reason for r in res.rejected] == ["overlap"]
    assert _flat((r.segment.start_s, r.segment.end_s) for r in res.rejected) == pytest.approx([4.6, 5.4])
    kept = CleanTrim(**COMMON, change_cut=0.9).process(
        _ctx(tmp_path, _voice(10.0, rng), _speakers([(4.6, 5.4, 0.8)])), seg
    )
    assert [(s.start_s, s.end_s) for s in kept.segments] == [(0.0, 10.0)]  # evidence under the threshold


def test_a_turn_with_a_heard_pause_is_split_there_not_cut(tmp_path) -> None:
    """Two voices 0.6 s apart (the segmentation model calls the pause speech): pause_s splits at it, and with
    change_cut_pauses the turn evidence over it cuts nothing."""
    rng = np.random.default_rng(2)
    audio = np.concatenate([_voice(4.7, rng), _quiet(0.6, rng), _voice(4.7, rng)])
    spk = _speakers([(4.4, 5.6, 0.8)])
    seg = [Segment.new("r", "/a.wav", 0.0, 10.0, "v")]
    only_pause = CleanTrim(**COMMON, pause_s=0.3).process(_ctx(tmp_path, audio, spk), seg)
    assert _flat((s.start_s, s.end_s) for s in only_pause.segments) == pytest.approx([0, 5.0, 5.0, 10], abs=0.02)
    spared = CleanTrim(**COMMON, pause_s=0.3, change_cut=0.5, change_cut_pauses=True).process(
        _ctx(tmp_path, audio, spk), seg
    )
    assert spared.rejected == [] and len(spared.segments) == 2
    cut = CleanTrim(**COMMON, pause_s=0.3, change_cut=0.5).process(_ctx(tmp_path, audio, spk), seg)
    assert [r.reason for r in cut.rejected] == ["overlap"]


@pytest.mark.parametrize(
    ("field", "value"), [("change_cut", 0.0), ("change_cut", 1.0), ("pause_s", -0.1), ("pause_db", 0.0)]
)
def test_turn_params_are_validated(field, value) -> None:
    with pytest.raises(ConfigError, match=field):
        CleanTrim(**{field: value}).validate()


def test_calibrate_searches_the_turn_params() -> None:
    assert {"change_cut", "pause_s", "pause_db", "change_cut_pauses"} <= set(calibrate.GRID)
    for name in ("change_cut", "pause_s", "pause_db"):
        for v in calibrate.GRID[name]:
            CleanTrim(**{name: v}).validate()  # every value the fit tries is a valid setting
