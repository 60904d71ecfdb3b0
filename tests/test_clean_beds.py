"""Speech over a noise bed: the noise floor of a window (its quiet 10 ms moments), a noise span growing under the
voice next to it while the floor stays up (tables and properties), clean_trim cutting it end to end, calibration
fitting the margin on a labelled run, and a real noise bed under real speech cut while clean real speech stays."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from curate import calibrate, manifest, timeline
from curate.errors import ConfigError
from curate.quality import Region
from curate.rundir import RunDir
from curate.schema import Frames, Segment
from curate.stages.base import RecordingContext
from curate.stages.clean import CleanTrim, with_floor
from curate.stages.clean_spans import extend_beds, noise_floor_db, running_min
from curate.testing import fake_recording

SR = 16000


def _db(x: float) -> float:
    return 10 ** (x / 20)


def _voice(seconds: float, rng: np.random.Generator, level_db: float = -12.0) -> np.ndarray:
    """Syllable-like bursts (0.2 s of a 150 Hz buzz) with 0.1 s pauses between them: what a floor must see through."""
    t = np.arange(int(seconds * SR)) / SR
    on = (t % 0.3) < 0.2
    return (_db(level_db) * np.sign(np.sin(2 * np.pi * 150 * t)) * on + rng.normal(0, 1e-3, t.size) * on).astype(
        np.float32
    )


def _noise(seconds: float, rng: np.random.Generator, level_db: float) -> np.ndarray:
    return (rng.normal(0, 1, int(seconds * SR)) * _db(level_db)).astype(np.float32)


@pytest.mark.parametrize("noise_db", [-70.0, -50.0, -35.0])
def test_noise_floor_sees_the_noise_between_syllables(noise_db) -> None:
    rng = np.random.default_rng(0)
    x = _voice(4.0, rng) + _noise(4.0, rng, noise_db)
    starts = np.arange(7) * 0.48
    floor = noise_floor_db(x, starts, starts + 0.96)
    assert floor == pytest.approx(np.full(7, noise_db), abs=1.5)  # the bursts (-12 dB) do not raise it


@pytest.mark.parametrize(
    "values, width, expected",
    [
        ([-20, -60, -20, -20, -20], 3, [-60, -60, -60, -20, -20]),  # one pause pulls its neighbours down
        ([-20, -60, -20], 1, [-20, -60, -20]),  # width 1: unchanged
        ([-30, -20, -25, -40], 2, [-30, -30, -40, -40]),  # an even width is made odd
    ],
)
def test_running_min(values, width, expected) -> None:
    assert running_min(values, width).tolist() == expected


CELLS = np.arange(10.0)


@pytest.mark.parametrize(
    "floor, runs, margin, expected",
    [
        # noise alone at -20 dB in cells 2-3, the voice over it (floor -32) in 4-6, clean speech (-70) around
        ([-70, -70, -20, -20, -32, -32, -32, -70, -70, -70], [(2, 4)], 15, [(2, 7)]),
        ([-70, -70, -20, -20, -32, -32, -32, -70, -70, -70], [(2, 4)], 10, [(2, 4)]),  # the bed ducked further
        ([-20, -20, -60, -60, -60, -60, -60, -60, -60, -60], [(0, 2)], 15, [(0, 2)]),  # clean speech next: stays
        ([-30, -30, -30, -20, -20, -30, -30, -30, -70, -70], [(3, 5)], 15, [(0, 8)]),  # both sides, to the edge
        ([-70, -20, -70, -70, -20, -70, -70, -70, -70, -70], [(1, 2), (4, 5)], 15, [(1, 2), (4, 5)]),
        ([-70, -20, -25, -25, -20, -70, -70, -70, -70, -70], [(1, 2), (4, 5)], 15, [(1, 5)]),  # two runs meet
        ([-20] * 10, [(3.2, 3.4)], 15, [(3.2, 3.4)]),  # no cell's middle inside: nothing to measure, unchanged
    ],
)
def test_extend_beds(floor, runs, margin, expected) -> None:
    got = extend_beds(runs, CELLS, CELLS + 1, floor, margin)
    assert got == [tuple(map(float, iv)) for iv in expected]


levels = st.lists(st.floats(-90, 0, allow_nan=False), min_size=10, max_size=10)
run_list = st.lists(st.tuples(st.integers(0, 9), st.integers(1, 4)).map(lambda t: (t[0], min(10, t[0] + t[1]))))


@given(levels, run_list, st.floats(0, 30), st.floats(0, 30))
def test_extend_beds_only_grows_over_loud_floor_and_more_with_a_wider_margin(floor, runs, m1, m2) -> None:
    small, large = sorted((m1, m2))
    got = extend_beds(runs, CELLS, CELLS + 1, floor, small)
    assert got == timeline.merge(got)  # merged, sorted
    assert timeline.total(timeline.intersect(runs, got)) == pytest.approx(timeline.total(runs))  # holds every run
    quietest = min((float(np.median(np.asarray(floor)[a:b])) for a, b in runs), default=0.0)
    for a, b in timeline.subtract(got, runs):  # what it added: whole cells whose floor is high enough
        assert a == int(a) and b == int(b)
        assert all(floor[i] >= quietest - small - 1e-9 for i in range(int(a), int(b)))
    wider = extend_beds(runs, CELLS, CELLS + 1, floor, large)
    assert timeline.total(timeline.subtract(got, wider)) == pytest.approx(0.0)  # a wider margin never takes back


# --- clean_trim end to end -------------------------------------------------------------------------------------


def _programme(rng: np.random.Generator) -> np.ndarray:
    """0-3 s noise alone (-30 dB), 3-9 s a voice over it ducked by 10 dB, 9-11 s the noise alone again, 11-12 s
    silence, 12-20 s a voice over nothing (a -70 dB room)."""
    bed = np.concatenate([_noise(3, rng, -30), _voice(6, rng) + _noise(6, rng, -40), _noise(2, rng, -30)])
    return np.concatenate([bed, _noise(1, rng, -70), _voice(8, rng) + _noise(8, rng, -70)])


def _tags(n: int) -> Frames:
    """YAMNet as on real beds: noise scores high where the noise is alone, near 0 once a voice is over it."""
    start = np.arange(n) * 0.48
    mid = start + 0.48
    alone = ((mid < 3) | ((mid >= 9) & (mid < 11))).astype(float)
    z = np.zeros(n)
    values = {"speech": 1 - alone, "music": z, "vocal_music": z, "noise": 0.9 * alone, "energy_db": np.full(n, -20.0)}
    return Frames("tags", start, start + 0.96, values)


SEGMENTS = [Segment.new("r", "/a.wav", 2.5, 9.5, "v", speaker="A"), Segment.new("r", "/a.wav", 12.0, 20.0, "v")]


def test_clean_trim_cuts_speech_over_a_bed_and_keeps_clean_speech(tmp_path) -> None:
    path = tmp_path / "r.flac"
    sf.write(path, _programme(np.random.default_rng(1)), SR)
    rec = dataclasses.replace(fake_recording("r", 20.0), audio_path=str(path))
    common = dict(noise=0.5, overlap=None, change=None, pad_s=0.0, min_split_s=0.0)

    ctx = RecordingContext(rec)
    ctx.frames["tags"] = _tags(42)
    res = CleanTrim(**common).process(ctx, SEGMENTS)  # YAMNet alone: the noise's own frames go, the voice stays
    assert timeline.total([(s.start_s, s.end_s) for s in res.segments if s.end_s <= 10]) > 5

    ctx = RecordingContext(rec)
    ctx.frames["tags"] = _tags(42)
    res = CleanTrim(**common, bed_margin_db=15.0).process(ctx, SEGMENTS)  # floor made from the audio
    assert [(s.start_s, s.end_s) for s in res.segments] == [(12.0, 20.0)]
    assert {r.reason for r in res.rejected} == {"noise"}
    assert sum(r.segment.end_s - r.segment.start_s for r in res.rejected) == pytest.approx(7.0)


@pytest.mark.parametrize("field, value", [("bed_margin_db", 0.0), ("bed_margin_db", 90.0), ("bed_window_s", 0.0)])
def test_bed_params_are_validated(field, value) -> None:
    with pytest.raises(ConfigError, match=field):
        CleanTrim(**{field: value}).validate()


def test_with_floor_adds_the_column_once() -> None:
    rng = np.random.default_rng(2)
    tags = with_floor(_tags(42), _programme(rng))
    mid = tags.start_s + 0.48
    assert np.median(tags.values["floor_db"][mid < 2.5]) > np.median(tags.values["floor_db"][mid > 13]) + 30
    assert with_floor(tags, np.zeros(10)) is tags


def test_calibrate_fits_the_bed_margin_on_a_labelled_run(tmp_path) -> None:
    """The source variant is two VAD chunks: a voice over a bed (with the bed alone around it) and clean speech;
    the fit turns the bed rule on, which removes the noisy speech and keeps the clean one."""
    path = tmp_path / "r.flac"
    sf.write(path, _programme(np.random.default_rng(3)), SR)
    rd = RunDir(tmp_path / "run")
    rec = dataclasses.replace(fake_recording("r", 20.0), audio_path=str(path))
    manifest.write_records(rd.recordings, [rec], "recordings")
    segs = [Segment.new("r", str(path), s.start_s, s.end_s, "src", speaker=s.speaker) for s in SEGMENTS]
    manifest.write_records(rd.variant_path("src") / "part-00000.parquet", segs, "segments")
    manifest.write_table(rd.scores_path("tags", "r"), _tags(42).to_arrow(), "tags")  # saved without a floor
    chain = [{"stage": "clean_trim", "noise": 0.5, "overlap": None, "change": None, "min_split_s": 0.0, "pad_s": 0.0},
             {"stage": "min_duration", "min_s": 1.0}]  # fmt: skip
    rd.write_run("t", ["src", "x-clean"], pipeline={"derive": {"x-clean": {"from": "src", "stages": chain}}})
    truth = {"r": [Region(0, 3, "noise"), Region(3, 9, "speech", speaker="A", background="noise"),
                   Region(9, 11, "noise"), Region(11, 12, "silence"), Region(12, 20, "speech", speaker="B")]}  # fmt: skip
    data = calibrate.load(rd.path, truth, "x-clean")
    as_run = calibrate.score(data, calibrate.trim_params(data.chain))
    assert as_run.noise_pct > 30 and as_run.clean_single_pct < 70
    params, q = calibrate.fit(data, calibrate.trim_params(data.chain), grid={"bed_margin_db": (None, 6.0, 15.0)})
    assert params["bed_margin_db"] == 15.0  # 6 dB is less than the bed is ducked under the voice
    assert q.noise_pct == pytest.approx(0.0) and q.clean_single_pct >= 99 and q.clean_recall_pct >= 99
    cut = {(stage, why): s for stage, why, s, _ in calibrate.where_it_went(data, params)}
    assert cut[("clean_trim", "noise")] == pytest.approx(7.0, abs=0.5)


@pytest.mark.realaudio
def test_real_speech_over_a_real_noise_bed_is_cut_and_clean_real_speech_kept(realaudio, repo, tmp_path) -> None:
    """A LibriSpeech sentence over a recorded noise (speechbrain's noise1, 0.3 gain under the voice, alone for 2 s
    before and after it, as the benchmark's programmes place a bed), then another sentence over nothing; real
    YAMNet frames, wx-asr-1s-clean's shipped clean_trim params. The voice over the bed goes; the clean one stays."""
    import yaml

    from curate import audio
    from curate.models import resolve
    from curate.models.tagger import SoundTagger

    def clip(cid: str) -> np.ndarray:
        return audio.load(str(realaudio / "flac" / f"{cid}.flac"))

    noise, bedded, clean = (
        clip("nz_sb_noise1"),
        clip("sp_en_libri_2412-153948-0001"),
        clip("sp_en_libri_6313-76958-0021"),
    )
    n = 2 * SR
    bed = np.resize(noise, 2 * n + bedded.size)
    bed[n : n + bedded.size] = 0.3 * bed[n : n + bedded.size] + bedded
    x = np.concatenate([bed, np.zeros(SR // 2, np.float32), clean]).astype(np.float32)
    x += np.random.default_rng(0).normal(0, 2e-4, x.size).astype(np.float32)
    voice_bed, voice_clean = (2.0, 2.0 + bedded.size / SR), (bed.size / SR + 0.5, x.size / SR)
    sf.write(tmp_path / "r.flac", x, SR)
    rec = dataclasses.replace(fake_recording("r", x.size / SR), audio_path=str(tmp_path / "r.flac"))
    ctx = RecordingContext(rec)
    ctx.frames["tags"] = SoundTagger(resolve("yamnet:w8a8").path).frames(x)
    post = yaml.safe_load((repo / "pipelines" / "post" / "wx-asr-1s-clean.yaml").read_text())
    params = next(st for st in post["derive"]["wx-asr-1s-clean"]["stages"] if st["stage"] == "clean_trim")
    params = {k: v for k, v in params.items() if k != "stage"}
    chunks = [
        Segment.new("r", rec.audio_path, 0.0, bed.size / SR, "v"),
        Segment.new("r", rec.audio_path, *voice_clean, "v"),
    ]

    def kept(p: dict, span: tuple[float, float]) -> float:
        res = CleanTrim(**p).process(ctx, chunks)
        got = [(s.start_s, s.end_s) for s in res.segments]
        return timeline.total(timeline.intersect(got, [span])) / (span[1] - span[0])

    assert kept(params, voice_bed) <= 0.1
    assert kept(params, voice_clean) >= 0.9
    # YAMNet's frames alone hardly hear the bed under the voice: the bed rules (margin, bridge) cut it
    assert kept({**params, "bed_margin_db": None, "bed_bridge_s": 0.0}, voice_bed) >= 0.5


@pytest.mark.parametrize(
    "speech, runs, expected",
    [
        ([0.0, 0.0, 0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.0, 0.0], [(0, 3), (8, 10)], [(0, 3), (8, 10)]),  # noise alone
        ([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], [(4, 5)], []),  # a noise class flickering over a voice
        ([0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], [(0, 3)], []),  # mostly voice
        ([0.0] * 10, [(3.2, 3.4)], []),  # no cell inside
    ],
)
def test_heard_alone(speech, runs, expected) -> None:
    from curate.stages.clean_spans import heard_alone

    assert heard_alone(runs, CELLS, CELLS + 1, speech) == expected


def test_a_noisy_recording_of_clean_speech_is_not_a_bed() -> None:
    """A voice recorded over a steady floor (a phone line, a hissing tape) with a noise class flickering once: no
    noise is heard alone next to it, so nothing grows and only the flicker's own frames can go."""
    rng = np.random.default_rng(4)
    x = _voice(20, rng) + _noise(20, rng, -30)
    tags = _tags(42)
    n = len(tags)
    flicker = np.zeros(n)
    flicker[20:22] = 0.9
    tags = Frames("tags", tags.start_s, tags.end_s, {**tags.values, "speech": np.full(n, 0.9), "noise": flicker})
    ctx = RecordingContext(fake_recording("r", 20.0))
    ctx.frames["tags"] = with_floor(tags, x)
    seg = [Segment.new("r", "/a.wav", 0.0, 20.0, "v")]
    res = CleanTrim(noise=0.5, overlap=None, change=None, pad_s=0.0, min_split_s=0.0, bed_margin_db=15.0).process(
        ctx, seg
    )
    assert sum(r.segment.end_s - r.segment.start_s for r in res.rejected) <= 1.5


# --- a short voice between two spans of one bed (bed_bridge_s) ---------------------------------------------------

ALONE_AROUND = [0.0, 0.0, 0.9, 0.9, 0.9, 0.0, 0.0, 0.9, 0.9, 0.9]  # speech score per cell: bed, voice, bed, voice


@pytest.mark.parametrize(
    "runs, max_gap, expected",
    [
        ([(0, 2), (5, 7)], 3.0, [(0, 7)]),  # a 3 s voice with the bed alone on both sides: spoken over it
        ([(0, 2), (5, 7)], 2.9, [(0, 2), (5, 7)]),  # a longer voice stays
        ([(0, 2), (5, 7)], 0.0, [(0, 2), (5, 7)]),  # off
        ([(0, 2), (3, 4), (5, 7)], 2.0, [(0, 2), (3, 4), (5, 7)]),  # a flicker over the voice does not shorten it
        ([(0, 2), (9, 10)], 10.0, [(0, 2), (9, 10)]),  # (9, 10) lies under a voice, not heard alone
        ([(0, 2)], 5.0, [(0, 2)]),  # one side only: a voice after a bed stays
    ],
)
def test_bridge_beds(runs, max_gap, expected) -> None:
    from curate.stages.clean_spans import bridge_beds

    assert bridge_beds(runs, CELLS, CELLS + 1, ALONE_AROUND, max_gap) == expected


@given(
    st.lists(st.tuples(st.integers(0, 9), st.integers(1, 3)), max_size=4),
    st.lists(st.floats(0, 1), min_size=10, max_size=10),
    st.floats(0, 6),
    st.floats(0, 6),
)
def test_bridge_beds_adds_only_short_gaps_and_grows_with_the_limit(raw, speech, g1, g2) -> None:
    from curate.stages.clean_spans import bridge_beds

    runs = timeline.merge([(float(a), float(min(10, a + w))) for a, w in raw])
    small, large = sorted((g1, g2))
    got = bridge_beds(runs, CELLS, CELLS + 1, speech, small)
    assert timeline.total(timeline.subtract(runs, got)) == pytest.approx(0.0)  # every run stays bad
    assert all(b - a <= small + 1e-9 for a, b in timeline.subtract(got, runs))  # each added piece is one short gap
    wider = bridge_beds(runs, CELLS, CELLS + 1, speech, large)
    assert timeline.total(timeline.subtract(got, wider)) == pytest.approx(0.0)  # a longer limit never takes back


def _music_tags(voice_s: float) -> Frames:
    """A music bed alone 0-3 s, a voice over it (YAMNet's music near 0 there) for ``voice_s``, the bed alone for
    2 s, then 8 s of clean speech."""
    n = int((3 + voice_s + 2 + 8) / 0.48)
    start = np.arange(n) * 0.48
    mid = start + 0.48
    alone = ((mid < 3) | ((mid >= 3 + voice_s) & (mid < 5 + voice_s))).astype(float)
    z = np.zeros(n)
    values = {"speech": 1 - alone, "music": 0.9 * alone, "vocal_music": z, "noise": z, "energy_db": np.full(n, -20.0)}
    return Frames("tags", start, start + 0.96, values)


@pytest.mark.parametrize("voice_s, bridge_s, voice_kept", [(3.0, 6.0, False), (3.0, 0.0, True), (9.0, 6.0, True)])
def test_clean_trim_cuts_a_short_voice_between_two_spans_of_a_music_bed(voice_s, bridge_s, voice_kept) -> None:
    ctx = RecordingContext(fake_recording("r", 13 + voice_s))
    ctx.frames["tags"] = _music_tags(voice_s)
    end = 13 + voice_s
    segs = [Segment.new("r", "/a.wav", 0.0, 5 + voice_s, "v"), Segment.new("r", "/a.wav", 5.5 + voice_s, end, "v")]
    res = CleanTrim(music=0.5, overlap=None, change=None, pad_s=0.0, min_split_s=0.0, bed_bridge_s=bridge_s).process(
        ctx, segs
    )
    got = [(s.start_s, s.end_s) for s in res.segments]
    voice = timeline.total(timeline.intersect(got, [(3.5, 2.5 + voice_s)])) / (voice_s - 1)
    assert voice == (pytest.approx(1.0) if voice_kept else 0.0)
    assert timeline.total(timeline.intersect(got, [(5.5 + voice_s, end)])) == pytest.approx(7.5)  # clean speech stays
    assert {r.reason for r in res.rejected} == {"music"}


def test_bed_bridge_is_validated() -> None:
    with pytest.raises(ConfigError, match="bed_bridge_s"):
        CleanTrim(bed_bridge_s=-1.0).validate()


def test_calibrate_fits_the_bridge_on_a_labelled_run(tmp_path) -> None:
    """A 3 s voice between two spans of a music bed and 8 s of clean speech: the fit turns the bridge on (the voice
    over the bed goes, the clean speech stays) and stops at the smallest value that does it."""
    rd = RunDir(tmp_path / "run")
    rec = fake_recording("r", 16.0)  # no audio file: the bridge reads the saved frames only
    manifest.write_records(rd.recordings, [rec], "recordings")
    segs = [Segment.new("r", rec.audio_path, 0.0, 8.0, "src", speaker="A"),
            Segment.new("r", rec.audio_path, 8.5, 16.0, "src", speaker="B")]  # fmt: skip
    manifest.write_records(rd.variant_path("src") / "part-00000.parquet", segs, "segments")
    manifest.write_table(rd.scores_path("tags", "r"), _music_tags(3.0).to_arrow(), "tags")
    chain = [{"stage": "clean_trim", "music": 0.5, "overlap": None, "change": None, "min_split_s": 0.0, "pad_s": 0.0},
             {"stage": "min_duration", "min_s": 1.0}]  # fmt: skip
    rd.write_run("t", ["src", "x-clean"], pipeline={"derive": {"x-clean": {"from": "src", "stages": chain}}})
    truth = {"r": [Region(0, 3, "music"), Region(3, 6, "speech", speaker="A", background="music"),
                   Region(6, 8, "music"), Region(8, 16, "speech", speaker="B")]}  # fmt: skip
    data = calibrate.load(rd.path, truth, "x-clean")
    assert calibrate.score(data, calibrate.trim_params(data.chain)).music_pct > 20
    params, q = calibrate.fit(data, calibrate.trim_params(data.chain), grid={"bed_bridge_s": (0.0, 2.0, 4.0, 8.0)})
    assert params["bed_bridge_s"] == 4.0
    assert q.music_pct == pytest.approx(0.0) and q.clean_single_pct >= 99 and q.clean_recall_pct >= 90
