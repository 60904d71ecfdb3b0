"""The synthetic demo archive: what the pipeline's tests and `make demo` rely on it to contain."""

from __future__ import annotations

import csv
import json
import subprocess
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curate.demo.archive import (
    CATALOG_COLUMNS,
    FILTERED_GENRES,
    KINDS,
    build_demo_archive,
    build_mini_archive,
)
from curate.quality import Region, load_ground_truth
from curate.synth import espeak


def _rows(catalog: Path) -> list[dict[str, str]]:
    with open(catalog, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mini_archive(tmp_path_factory.mktemp("mini") / "archive")


@pytest.fixture(scope="module")
def truth(mini: Path) -> dict[str, list[Region]]:
    return load_ground_truth(mini.parent / "ground_truth.json")


def test_catalog_has_the_contract_columns_and_an_extra_metadata_column(mini: Path) -> None:
    with open(mini, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert tuple(header) == CATALOG_COLUMNS
    assert {"recording_id", "audio_path", "title", "summary", "genre", "published", "language"} < set(header)
    rows = _rows(mini)
    assert len({r["recording_id"] for r in rows}) == len(rows) == 4
    assert {r["language"] for r in rows} == {"nl", "en"}


def test_audio_is_decodable_in_mixed_formats_rates_and_channels(mini: Path) -> None:
    infos = {}
    for row in _rows(mini):
        path = mini.parent / row["audio_path"]
        assert path.is_file()
        info = sf.info(path)
        probed = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert float(probed.stdout) == pytest.approx(info.duration, abs=0.25)  # mp3: ffprobe estimates
        infos[row["recording_id"]] = (path.suffix, info.samplerate, info.channels)
    assert {s for s, _, _ in infos.values()} == {".wav", ".flac", ".mp3"}
    assert len({rate for _, rate, _ in infos.values()}) >= 2
    assert {ch for _, _, ch in infos.values()} == {1, 2}


def test_ground_truth_tiles_each_file_exactly(mini: Path, truth: dict[str, list[Region]]) -> None:
    rows = _rows(mini)
    assert set(truth) == {r["recording_id"] for r in rows}
    for row in rows:
        regions = truth[row["recording_id"]]
        duration = sf.info(mini.parent / row["audio_path"]).duration
        assert regions[0].start_s == 0
        assert regions[-1].end_s == pytest.approx(duration, abs=1e-3)
        for a, b in pairwise(regions):
            assert a.start_s < a.end_s <= b.start_s  # ordered and non-overlapping
        for r in regions:
            assert r.kind in KINDS
            if r.kind == "speech":
                assert r.speaker and r.language == row["language"] and r.text and r.text[-1] in ".?!"


def test_archive_holds_every_kind_and_turn_taking(truth: dict[str, list[Region]]) -> None:
    kinds = Counter(r.kind for regions in truth.values() for r in regions)
    assert set(kinds) == set(KINDS)
    assert any(r.background == "music" for regions in truth.values() for r in regions)
    speakers = {r.speaker for regions in truth.values() for r in regions if r.kind == "speech"}
    assert len(speakers) >= 2
    for regions in truth.values():
        turns = [r.speaker for r in regions if r.kind == "speech"]
        if len(turns) > 1:
            assert all(a != b for a, b in pairwise(turns))  # consecutive turns alternate


def test_ground_truth_times_match_the_audio(mini: Path, truth: dict[str, list[Region]]) -> None:
    """Speech regions are loud and silences quiet in the written file (mp3 included), so times are right."""
    speech, silence = [], []
    for row in _rows(mini):
        audio, rate = sf.read(mini.parent / row["audio_path"], dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        for r in truth[row["recording_id"]]:
            rms = float(np.sqrt(np.mean(mono[round(r.start_s * rate) : round(r.end_s * rate)] ** 2)))
            if r.kind == "speech":
                speech.append(rms)
            elif r.kind == "silence" and r.end_s - r.start_s > 0.3:
                silence.append(rms)
    assert len(speech) > 5 and len(silence) > 5
    assert min(speech) > 0.02 > 0.002 > max(silence)


def test_rttm_lists_the_speech_turns(mini: Path, truth: dict[str, list[Region]]) -> None:
    for rid, regions in truth.items():
        lines = (mini.parent / "rttm" / f"{rid}.rttm").read_text().splitlines()
        speech = [r for r in regions if r.kind == "speech"]
        assert len(lines) == len(speech)
        for line, r in zip(lines, speech, strict=True):
            fields = line.split()
            assert fields[0] == "SPEAKER" and fields[1] == rid and fields[7] == r.speaker
            assert float(fields[3]) == pytest.approx(r.start_s, abs=1e-3)


def test_rerun_pair_and_genres_to_filter(mini: Path, truth: dict[str, list[Region]]) -> None:
    rows = _rows(mini)
    pairs = [
        (a, b)
        for a, b in pairwise(rows)
        if (a["title"], a["summary"], a["published"][:10]) == (b["title"], b["summary"], b["published"][:10])
    ]
    assert len(pairs) == 1
    original, rerun = pairs[0]
    assert original["published"] < rerun["published"]
    assert truth[original["recording_id"]] == truth[rerun["recording_id"]]
    assert {r["genre"] for r in rows} & set(FILTERED_GENRES)


def test_same_seed_same_archive_and_rebuild_is_skipped(mini: Path, tmp_path: Path) -> None:
    again = build_mini_archive(tmp_path / "again")
    assert again.read_bytes() == mini.read_bytes()
    assert (again.parent / "ground_truth.json").read_bytes() == (mini.parent / "ground_truth.json").read_bytes()
    wav = next(r["audio_path"] for r in _rows(mini) if r["audio_path"].endswith(".wav"))
    assert (again.parent / wav).read_bytes() == (mini.parent / wav).read_bytes()

    stamp = (again.parent / wav).stat().st_mtime_ns
    assert build_mini_archive(tmp_path / "again") == again
    assert (again.parent / wav).stat().st_mtime_ns == stamp  # idempotent: nothing rewritten
    assert json.loads((again.parent / "demo_params.json").read_text())["seed"] == 0

    other = build_mini_archive(tmp_path / "again", seed=1)  # new parameters: rebuilt in place
    assert (other.parent / wav).read_bytes() != (mini.parent / wav).read_bytes()


def test_demo_archive_carries_the_metadata_traps(tmp_path: Path) -> None:
    """A shrunken full build: genres to drop, an over-long programme and a rerun, at the programmes' lengths."""
    catalog = build_demo_archive(tmp_path, n_programmes=6, min_s=20, max_s=25, overlong_s=32)
    rows = _rows(catalog)
    assert len(rows) == 6
    assert {"music", "commercial"} <= {r["genre"] for r in rows}
    assert [r["title"] for r in rows].count(rows[2]["title"]) >= 2
    durations = {r["recording_id"]: sf.info(catalog.parent / r["audio_path"]).duration for r in rows}
    assert max(durations.values()) == pytest.approx(32)
    assert all(20 <= d <= 25 or d == pytest.approx(32) for d in durations.values())


def test_missing_tool_names_the_apt_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(espeak.shutil, "which", lambda name: None if name == "espeak-ng" else f"/usr/bin/{name}")
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        build_mini_archive(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_harder_blocks_overlap_speech_over_applause_and_their_ground_truth(tmp_path: Path) -> None:
    """Archive v2: a talkshow opens with two voices at once and speech over applause; the ground truth marks
    the overlap (both speakers, also in the RTTM) and what lies under the speech."""
    cat = build_mini_archive(tmp_path / "a", n=4, duration_s=90)
    truth = load_ground_truth(cat.parent / "ground_truth.json")
    talk = next(r["recording_id"] for r in _rows(cat) if r["genre"] == "talkshow")
    regions = truth[talk]
    both = [r for r in regions if r.background == "speech"]
    assert both and all(r.kind == "speech" and r.other_speaker not in (None, r.speaker) for r in both)
    assert any(r.kind == "speech" and r.background == "noise" for r in regions)
    assert all(abs(a.end_s - b.start_s) < 1e-9 for a, b in pairwise(regions))
    rttm = (cat.parent / "rttm" / f"{talk}.rttm").read_text()
    assert f"<NA> <NA> {both[0].other_speaker} <NA>" in rttm


@pytest.mark.realaudio
@pytest.mark.slow
def test_real_audio_archive_tiles_and_marks_what_is_under_the_speech(tmp_path: Path, realaudio: Path) -> None:
    from curate.demo.real import build_real_archive

    cat = build_real_archive(tmp_path / "real", realaudio, n_programmes=2, duration_s=60)
    truth = load_ground_truth(cat.parent / "ground_truth.json")
    assert len(_rows(cat)) == 2
    for rid, regions in truth.items():
        info = sf.info(cat.parent / "audio" / f"{rid}.flac")
        assert regions[0].start_s == 0.0 and regions[-1].end_s == pytest.approx(info.duration, abs=1e-3)
        assert all(abs(a.end_s - b.start_s) < 1e-9 for a, b in pairwise(regions))
    under = {r.background for rs in truth.values() for r in rs if r.kind == "speech"}
    assert {"music", "speech"} <= under  # the opening plan: turns, speech over music, an overlap …
    assert build_real_archive(tmp_path / "real", realaudio, n_programmes=2, duration_s=60) == cat  # idempotent


def _active_db(x: np.ndarray, sr: int = 16000) -> float:
    """Level of the 10 ms frames within 40 dB of the loudest (pauses do not count), dB."""
    n = x.size // (sr // 100)
    e = np.mean(np.square(x[: n * (sr // 100)].reshape(n, -1), dtype=np.float64), axis=1)
    return float(10 * np.log10(np.mean(e[e >= e.max() * 1e-4])))


@pytest.mark.realaudio
@pytest.mark.slow
def test_real_audio_beds_lie_at_the_drawn_ratio_voices_at_broadcast_level_and_the_layout_does_not_move(
    tmp_path: Path, realaudio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each "speech over X" region: programme minus the voice clip (from the inventory, at its broadcast gain) is
    the bed; its level under the voice lies in BED_SNR_DB and the voice's in LEVEL_DB. Another ratio range changes
    the mix, never the timeline. (Labels by clip here: the voiced split is tested on its own below.)"""
    from curate import audio
    from curate.demo import real

    monkeypatch.setattr(real, "voiced", lambda x: np.ones(x.size, bool))
    cat = real.build_real_archive(tmp_path / "v3", realaudio, n_programmes=2, duration_s=150)
    truth = load_ground_truth(cat.parent / "ground_truth.json")
    inv = [r for r in _rows(realaudio / "INVENTORY.csv") if r["content_type"] == "speech"]
    lo, hi = real.BED_SNR_DB
    centre, spread = real.LEVEL_DB["speech"]
    snrs = []
    for rid, regions in truth.items():
        x, sr = sf.read(cat.parent / "audio" / f"{rid}.flac", dtype="float32")
        for r in (r for r in regions if r.kind == "speech" and r.background in ("music", "vocal_music", "noise")):
            a, b = round(r.start_s * sr), round(r.end_s * sr)
            voices = [
                v * np.float32(real.clip_gain(row, v))
                for row in inv
                if f"{row['id'].split('_')[1]}:{row['speaker_id'] or row['id']}" == r.speaker
                and (v := audio.load(realaudio / "flac" / f"{row['id']}.flac")).size == b - a
            ]
            assert voices, f"{rid} {r}: no clip of {r.speaker} lasts the region"
            snr, v = max((_active_db(v) - _active_db(x[a:b] - v), v) for v in voices)  # the right clip: the bed
            snrs.append(snr)
            assert lo - 0.5 <= snr <= hi + 0.5, f"{rid} {r.start_s:.1f} s: voice {snr:.1f} dB over its bed"
            peak_capped = np.max(np.abs(v)) > 0.94
            assert peak_capped or abs(_active_db(v) - centre) <= spread + 0.5, f"{rid}: voice at {_active_db(v):.1f}"
    assert len(snrs) >= 6  # the opening plan holds a music, a song and a noise bed per programme

    monkeypatch.setattr(real, "BED_SNR_DB", (20.0, 20.0))
    other = real.build_real_archive(tmp_path / "v3-20dB", realaudio, n_programmes=2, duration_s=150)
    assert load_ground_truth(other.parent / "ground_truth.json") == truth
    y, _ = sf.read(other.parent / "audio" / f"{next(iter(truth))}.flac", dtype="float32")
    x, _ = sf.read(cat.parent / "audio" / f"{next(iter(truth))}.flac", dtype="float32")
    assert x.size == y.size and not np.array_equal(x, y)  # same timeline, another mix


def _burst(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return (0.1 * rng.standard_normal(round(seconds * 16000))).astype(np.float32)


def _hush(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return (1e-5 * rng.standard_normal(round(seconds * 16000))).astype(np.float32)


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        # (kind, seconds) … → voiced spans (s): lead-in and tail silence out, +- VOICED_PAD_S collar
        ([("hush", 0.6), ("voice", 1.0), ("hush", 0.8)], [(0.45, 1.75)]),
        ([("voice", 1.0), ("hush", 0.3), ("voice", 1.0)], [(0.0, 2.3)]),  # a pause under VOICED_GAP_S is speech
        ([("voice", 1.0), ("hush", 1.0), ("voice", 1.0)], [(0.0, 1.15), (1.85, 3.0)]),  # a longer one is not
        ([("voice", 2.0)], [(0.0, 2.0)]),
    ],
)
def test_voiced_marks_where_the_isolated_voice_is_active(pieces, expected) -> None:
    from curate.demo.real import voiced

    rng = np.random.default_rng(0)
    x = np.concatenate([(_burst if k == "voice" else _hush)(s, rng) for k, s in pieces])
    mask = voiced(x)
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    got = [(a / 16000, b / 16000) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    assert len(got) == len(expected)
    for (a, b), (c, d) in zip(got, expected, strict=True):
        assert a == pytest.approx(c, abs=0.011) and b == pytest.approx(d, abs=0.011)


def test_real_overlap_block_marks_overlap_only_where_both_voices_are_active() -> None:
    """Voice B starts with 0.5 s of silence inside the overlap: that part is A alone, not overlapped speech."""
    from curate.demo import real

    rng = np.random.default_rng(1)
    a = np.concatenate([_burst(3.0, rng), _hush(0.2, rng)])
    b = np.concatenate([_hush(0.5, rng), _burst(3.0, rng)])

    class Clips:
        speech = [{"id": "sp_xx_a", "speaker_id": "A", "language": "en"},
                  {"id": "sp_xx_b", "speaker_id": "B", "language": "en"}]  # fmt: skip

        def load(self, row):
            return a if row["speaker_id"] == "A" else b

    draws = iter([0, 0])  # A from both clips, then B, the only other speaker

    class Rng:  # picks A then B, an overlap of 1.5 s, then the pause after the block
        def integers(self, n):
            return next(draws)

        def uniform(self, lo, hi):
            return 1.5 if lo == 0.8 else 0.5

    regions = real._overlap(Rng(), Clips()).regions()
    both = [r for r in regions if r.background == "speech"]
    assert both and all(r.speaker == "xx:A" and r.other_speaker == "xx:B" for r in both)
    start = 3.2 - 1.5  # where B's clip starts
    assert both[0].start_s == pytest.approx(start + 0.5 - real.VOICED_PAD_S, abs=0.011)  # B's lead-in is A alone
    assert both[-1].end_s == pytest.approx(3.0 + real.VOICED_PAD_S, abs=0.011)  # A's tail silence is B alone
    alone = [r for r in regions if r.kind == "speech" and not r.background]
    assert {r.speaker for r in alone} == {"xx:A", "xx:B"}
    assert all(abs(p.end_s - q.start_s) < 1e-9 for p, q in pairwise(regions))
