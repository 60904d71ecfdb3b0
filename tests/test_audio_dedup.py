"""Audio de-duplication: the matching rules on generated fingerprints (no files), then Chromaprint on real
audio: a rerun found despite an offset, trimming and re-encoding; a programme with the same jingle but other
speech is no rerun; the stages through a run, cut_repeats and select."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from curate.schema import Segment, Word
from curate.stages.audio_dedup import (
    FingerprintIndex,
    Match,
    MatchParams,
    find_matches,
    find_reruns,
    informative,
    item_span_s,
    runs,
)
from curate.stages.cut_repeats import cut_segments

ITEMS_PER_S = 8


def noisy(fp: np.ndarray, rng: np.random.Generator, p: float = 0.05) -> np.ndarray:
    """A copy with each bit flipped with probability ``p`` (a re-encoded copy differs in a few % of bits)."""
    flips = (rng.random((fp.size, 32)) < p) @ (1 << np.arange(32, dtype=np.uint64))
    return fp ^ flips.astype(np.uint32)


def rand(rng: np.random.Generator, seconds: float) -> np.ndarray:
    return rng.integers(0, 2**32, int(seconds * ITEMS_PER_S), dtype=np.uint32)


@pytest.mark.parametrize(
    "mask, max_gap, expected",
    [
        ([0, 0, 0], 0, []),
        ([1, 1, 0, 1], 0, [(0, 2), (3, 4)]),
        ([1, 1, 0, 1], 1, [(0, 4)]),
        ([0, 1, 0, 0, 1, 1], 1, [(1, 2), (4, 6)]),
        ([1, 1, 1], 3, [(0, 3)]),
    ],
)
def test_runs_joins_gaps(mask, max_gap, expected):
    assert runs(np.array(mask, bool), max_gap) == expected


@pytest.mark.parametrize(
    "fp, expected",
    [([], []), ([5], [0]), ([5, 5, 5, 7], [0, 3]), ([1, 2, 2, 3, 3], [0, 1, 3])],
)
def test_static_items_carry_no_identity(fp, expected):
    assert informative(np.array(fp, np.uint32)).tolist() == expected


def test_index_keeps_the_earliest_postings_of_a_hash():
    same = np.array([7, 8] * 5, np.uint32)  # hash 7 at positions 0, 2, 4, ... in every recording
    index = FingerprintIndex([same, same, same], max_postings=4)
    _, rec, pos = index.lookup(np.array([7], np.uint32))
    assert list(zip(rec.tolist(), pos.tolist(), strict=True)) == [(0, 0), (0, 2), (0, 4), (0, 6)]


# (coverage of the later recording, coverage of the earlier one, keep) → which one is dropped
@pytest.mark.parametrize(
    "later_items, earlier_items, span, keep, dropped",
    [
        (100, 100, (0, 95), "first", {1: 0}),  # a copy: the later one goes
        (100, 100, (0, 95), "longest", {1: 0}),  # same length: the later one goes too
        (100, 120, (0, 95), "longest", {1: 0}),  # the earlier is longer and stays
        (120, 100, (0, 95), "longest", {0: 1}),  # the later is longer: the earlier goes
        (300, 100, (0, 95), "first", {0: 1}),  # the earlier is contained in a longer programme: it goes
        (100, 100, (0, 50), "first", {}),  # half shared (a report, adverts): no rerun
        (100, 1000, (0, 85), "first", {1: 0}),  # a trimmed rerun inside a longer original
    ],
)
def test_rerun_rules(later_items, earlier_items, span, keep, dropped):
    matches = [Match(query=1, ref=0, start=span[0], end=span[1], offset=0, ber=0.05)]
    out = find_reruns(matches, [earlier_items, later_items], coverage=0.8, keep=keep)
    assert {d: k for d, (k, _) in out.items()} == dropped


def test_rerun_chains_resolve_to_the_recording_that_stays():
    matches = [Match(1, 0, 0, 100, 0, 0.0), Match(2, 1, 0, 100, 0, 0.0)]
    assert {d: k for d, (k, _) in find_reruns(matches, [100, 100, 100]).items()} == {1: 0, 2: 0}


def test_rerun_found_despite_offset_and_trimming_in_fingerprints():
    rng = np.random.default_rng(0)
    original = rand(rng, 600)
    rerun = noisy(original[37 * ITEMS_PER_S : -61 * ITEMS_PER_S], rng)  # 37 s cut at the start, 61 s at the end
    other = rand(rng, 500)
    matches = find_matches([original, other, rerun], MatchParams())
    assert {d: k for d, (k, _) in find_reruns(matches, [600 * 8, 500 * 8, rerun.size]).items()} == {2: 0}
    (m,) = [m for m in matches if m.query == 2]
    assert m.offset == 37 * ITEMS_PER_S and m.end - m.start > 0.95 * rerun.size


def test_same_jingle_other_speech_is_a_repeat_not_a_rerun():
    rng = np.random.default_rng(1)
    jingle, advert = rand(rng, 10), rand(rng, 20)
    programmes = [
        np.concatenate([jingle, rand(rng, 200), advert, rand(rng, 100)]),
        np.concatenate([noisy(jingle, rng), rand(rng, 150)]),  # same jingle, other speech
        np.concatenate([rand(rng, 60), noisy(advert, rng), rand(rng, 40), noisy(jingle, rng), rand(rng, 30)]),
    ]
    matches = find_matches(programmes, MatchParams(min_match_s=5))
    assert find_reruns(matches, [p.size for p in programmes]) == {}
    found = sorted((m.query, m.ref, m.start // ITEMS_PER_S, m.end // ITEMS_PER_S) for m in matches)
    # the first occurrence (programme 0) is never a query; each later copy points at an earlier one
    assert found[0][:3] == (1, 0, 0) and found[0][3] in (9, 10)
    assert {(q, s) for q, _, s, _ in found} == {(1, 0), (2, 60), (2, 120)}


def test_unrelated_catalogs_match_nothing():
    rng = np.random.default_rng(2)
    assert find_matches([rand(rng, 300) for _ in range(20)], MatchParams()) == []


def test_within_recording_repeats_are_opt_in():
    rng = np.random.default_rng(3)
    advert = rand(rng, 15)
    prog = np.concatenate([advert, rand(rng, 100), noisy(advert, rng), rand(rng, 50)])
    assert find_matches([prog], MatchParams()) == []
    (m,) = find_matches([prog], MatchParams(within_recording=True))
    assert (m.query, m.ref, m.start // ITEMS_PER_S, m.offset) == (0, 0, 115, -115 * ITEMS_PER_S)


@pytest.mark.parametrize(
    "start, end, n, expected",
    [(0, 80, 1000, (0.0, 80 * 4096 / 3 / 11025 + 0.6)), (100, 1000, 1000, (100 * 4096 / 3 / 11025 + 1.0, 130.0))],
)
def test_item_spans_reach_the_recording_edges(start, end, n, expected):
    assert item_span_s(start, end, n, 130.0) == pytest.approx(expected)


def test_cut_segments_keeps_words_outside_the_repeat():
    words = (Word(" a", 0.5, 1.0), Word(" b", 4.0, 4.5), Word(" c", 8.0, 9.0))
    seg = Segment.new("r", "/a.wav", 0.0, 10.0, "v", text="a b c", words=words)
    plain = Segment.new("r", "/a.wav", 20.0, 30.0, "v", text="x")
    kept, cut = cut_segments([seg, plain], [(3.0, 6.0, "q at 0.0 s"), (29.5, 40.0, "q at 5.0 s")], min_keep_s=1.0)
    assert [(s.start_s, s.end_s, s.text) for s in kept] == [(0.0, 3.0, "a"), (6.0, 10.0, "c"), (20.0, 29.5, None)]
    assert [(s.start_s, s.end_s) for s, _ in cut] == [(3.0, 6.0), (29.5, 30.0)]
    assert all("first heard in q" in reason for _, reason in cut)


def _tone_mix(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Audio with changing pitch content (chroma) every 0.3-0.8 s: distinct fingerprints."""
    out, n = [], 0
    while n < seconds * sr:
        k = int(rng.uniform(0.3, 0.8) * sr)
        t = np.arange(k) / sr
        f = rng.uniform(110, 880, 3)
        out.append((np.sin(2 * np.pi * f[:, None] * t).sum(0) * 0.2).astype(np.float32))
        n += k
    return np.concatenate(out)[: int(seconds * sr)]


def test_chromaprint_rerun_reencoded_trimmed_and_padded(tmp_path):
    """Real fingerprints: the rerun is mp3 at another rate, 11.3 s trimmed, 7.4 s padded with a jingle."""
    import soundfile as sf

    from curate.models.fingerprint import fingerprint_array, fingerprint_file

    rng = np.random.default_rng(4)
    jingle = _tone_mix(np.random.default_rng(99), 22050, 7.4)
    original = np.concatenate([jingle, _tone_mix(rng, 22050, 90)])
    sf.write(tmp_path / "a.flac", original, 22050)
    sf.write(tmp_path / "b.wav", np.concatenate([jingle, original[int(11.3 * 22050) :]]), 22050)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(tmp_path / "b.wav"), "-ar", "44100", str(tmp_path / "b.mp3")], check=True
    )
    near = np.concatenate([jingle, _tone_mix(rng, 22050, 90)])  # same jingle, other content
    fps = [fingerprint_file(tmp_path / "a.flac"), fingerprint_array(near, 22050), fingerprint_file(tmp_path / "b.mp3")]
    assert abs(fps[0].size - 97.4 * 8.07) < 30
    matches = find_matches(fps, MatchParams())
    assert {d: k for d, (k, _) in find_reruns(matches, [f.size for f in fps]).items()} == {2: 0}
    jingle_hits = [m for m in matches if m.query == 1]
    assert jingle_hits and all(m.start == 0 and m.end < 10 * 8.1 for m in jingle_hits)


@pytest.fixture(scope="module")
def dup_archive(tmp_path_factory):
    """rec000: jingle + programme; rec001: jingle + another; rec002: rec000 aired again, trimmed, mp3;
    rec003: not readable audio (a failure row, not a crash)."""
    import soundfile as sf

    from curate.testing import make_catalog

    root = tmp_path_factory.mktemp("dup")
    (root / "audio").mkdir()
    rng = np.random.default_rng(5)
    jingle = _tone_mix(np.random.default_rng(98), 16000, 8.0)
    a = np.concatenate([jingle, _tone_mix(rng, 16000, 60)])
    sf.write(root / "audio" / "rec000.flac", a, 16000)
    sf.write(root / "audio" / "rec001.flac", np.concatenate([jingle, _tone_mix(rng, 16000, 50)]), 16000)
    sf.write(root / "audio" / "tmp.wav", a[int(4.7 * 16000) : -int(3.1 * 16000)], 16000)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(root / "audio" / "tmp.wav"), str(root / "audio" / "rec002.mp3")],
        check=True,
    )
    rows = [
        {"recording_id": f"rec{i:03d}", "audio_path": f"audio/rec{i:03d}.{ext}", "title": f"T{i}",
         "published": f"2020-01-0{i + 1}T20:00:00"}
        for i, ext in enumerate(["flac", "flac", "mp3"])
    ]  # fmt: skip
    return make_catalog(root / "catalog.csv", rows)


def test_audio_dedup_in_a_run_cut_and_select(dup_archive, tmp_path):
    from curate import manifest
    from curate.config import parse_pipeline
    from curate.export.select import Selection, select
    from curate.runners import run_pipeline
    from curate.stats import load_stats

    raw = {
        "name": "dedup",
        "filters": [{"stage": "fingerprint"}, {"stage": "audio_dedup", "min_repeat_s": 4}],
        "passes": {"seq": [{"stage": "naive_segment", "window_s": 10, "emit": "seq"}]},
        "derive": {"clean": {"from": "seq", "stages": [{"stage": "cut_repeats"}]}},
    }
    out = tmp_path / "run"
    run_pipeline(parse_pipeline(raw), dup_archive, out, runner="local")
    decisions = {d["recording_id"]: d for d in manifest.read_table(out / "decisions.parquet", "decisions").to_pylist()}
    assert decisions["rec002"]["reason"] == "audio_duplicate" and decisions["rec002"]["duplicate_of"] == "rec000"
    assert decisions["rec000"]["kept"] and decisions["rec001"]["kept"]
    repeats = manifest.read_table(out / "repeats.parquet", "repeats").to_pylist()
    assert [(r["recording_id"], r["first_recording_id"]) for r in repeats] == [("rec001", "rec000")]
    assert repeats[0]["start_s"] == 0 and 7.0 <= repeats[0]["end_s"] <= 9.5  # the 8 s jingle
    clean = manifest.read_table(out / "variants" / "clean", "segments").to_pylist()
    assert min(s["start_s"] for s in clean if s["recording_id"] == "rec001") == repeats[0]["end_s"]
    rejected = manifest.read_table(out / "rejected" / "cut_repeats", "rejected").to_pylist()
    assert rejected and all(r["recording_id"] == "rec001" for r in rejected)
    stats = load_stats(out)["audio_dedup"]
    assert (
        stats["reruns"] == 1
        and stats["repeats"] == 1
        and stats["repeat_hours"] * 3600 == pytest.approx(repeats[0]["duration_s"])
    )
    df, sel_stats = select(out, "seq", Selection(cut_repeats=True))
    assert not ((df["recording_id"] == "rec001") & (df["start_s"] < repeats[0]["end_s"])).any()
    assert [s["step"] for s in sel_stats["steps"]][:2] == ["input", "cut_repeats"]


def test_fingerprint_pass_resumes_after_a_kill(dup_archive, tmp_path, monkeypatch):
    """Killed during the fingerprint pass (before the plan): the rerun reuses the stored fingerprints."""
    from curate.config import parse_pipeline
    from curate.runners import run_pipeline
    from curate.stages.fingerprint import Fingerprint

    raw = {
        "name": "fp",
        "filters": [{"stage": "fingerprint"}, {"stage": "audio_dedup"}],
        "passes": {"seq": [{"stage": "naive_segment", "window_s": 10, "emit": "seq"}]},
    }
    out = tmp_path / "run"
    calls: list[str] = []
    real = Fingerprint.compute

    def dies_after_storing(self, rec):
        calls.append(rec.recording_id)
        if rec.recording_id == "rec002":
            raise KeyboardInterrupt
        return real(self, rec)

    monkeypatch.setattr(Fingerprint, "resources", type(Fingerprint.resources)(batch_size=1))
    monkeypatch.setattr(Fingerprint, "compute", dies_after_storing)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(parse_pipeline(raw), dup_archive, out, runner="local")
    monkeypatch.setattr(Fingerprint, "compute", lambda self, rec: calls.append(rec.recording_id) or real(self, rec))
    calls.clear()
    run_pipeline(parse_pipeline(raw), dup_archive, out, runner="local")
    assert "rec000" not in calls and "rec002" in calls


def test_unreadable_audio_in_the_fingerprint_pass_is_a_failure_row(dup_archive, tmp_path, monkeypatch):
    from curate import manifest
    from curate.audio import AudioDecodeError
    from curate.config import parse_pipeline
    from curate.runners import run_pipeline
    from curate.stages.fingerprint import Fingerprint

    real = Fingerprint.compute

    def broken(self, rec):
        if rec.recording_id == "rec001":
            raise AudioDecodeError(rec.audio_path, "decoding failed")
        return real(self, rec)

    monkeypatch.setattr(Fingerprint, "compute", broken)
    raw = {"name": "fp", "filters": [{"stage": "fingerprint"}], "passes": {"seq": [{"stage": "naive_segment"}]}}
    run_pipeline(parse_pipeline(raw), dup_archive, tmp_path / "run", runner="local")
    decisions = manifest.read_table(tmp_path / "run" / "decisions.parquet", "decisions").to_pylist()
    assert [(d["recording_id"], d["stage"]) for d in decisions if not d["kept"]] == [("rec001", "fingerprint")]
    failures = manifest.read_table(tmp_path / "run" / "failures.parquet", "failures").to_pylist()
    assert [(f["recording_id"], f["error_type"]) for f in failures] == [("rec001", "AudioDecodeError")]


def test_audio_dedup_needs_the_fingerprint_pass_first():
    from curate.config import parse_pipeline
    from curate.errors import ConfigError

    with pytest.raises(ConfigError, match="needs \\['fingerprint'\\] before it"):
        parse_pipeline({"name": "x", "filters": [{"stage": "audio_dedup"}, {"stage": "fingerprint"}]})
