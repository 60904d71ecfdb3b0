"""Corpora readers, Demucs stems, preview and render, on tiny fake corpora built from real clips."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from curate import audio, manifest
from curate.cli.app import app
from curate.corrupt import realized_snr_db
from curate.corrupt.readers import CorpusError, librispeech_run_dir, read_fma, read_musan, run_utterances

pytestmark = pytest.mark.realaudio
SPEAKERS = {"sp_en_sbasr_spk1": "1001", "sp_en_sbasr_spk2": "1002", "sp_en_sbnn_usphdevfemalespk01": "1003"}
TRACKS_CSV = """,album,artist,set,set,track,track
,title,name,split,subset,genre_top,title
track_id,,,,,,
2,A,Band,training,small,Hip-Hop,Song with words
5,B,Orchestra,training,small,Instrumental,Brahms
"""


@pytest.fixture(scope="module")
def corpora(realaudio, inventory, tmp_path_factory):
    """LibriSpeech (3 speakers × 2 chapters × 3 utterances), MUSAN (noise/{free-sound,sound-bible}, music/)
    and FMA (fma_large/000/*.mp3 + tracks.csv), from real clips."""
    root = tmp_path_factory.mktemp("corpora")
    ls = root / "LibriSpeech" / "dev-clean"
    for prefix, spk in SPEAKERS.items():
        ids = sorted(i for i in inventory["id"] if i.startswith(prefix))[:6]
        for k, cid in enumerate(ids):
            chap = str(100 + k // 3)
            d = ls / spk / chap
            d.mkdir(parents=True, exist_ok=True)
            uid = f"{spk}-{chap}-{k % 3:04d}"
            shutil.copy(realaudio / "flac" / f"{cid}.flac", d / f"{uid}.flac")
            with open(d / f"{spk}-{chap}.trans.txt", "a") as f:
                f.write(f"{uid} TEXT OF {cid.upper()}\n")
    for k, cid in enumerate(["nz_sb_noise2", "nz_librosa_robin", "nz_audiomentations_bus"]):
        sub = "free-sound" if k < 2 else "sound-bible"
        x = audio.load(realaudio / "flac" / f"{cid}.flac")
        (root / "musan" / "noise" / sub).mkdir(parents=True, exist_ok=True)
        sf.write(root / "musan" / "noise" / sub / f"{sub}-{k:04d}.wav", x, 16_000)
    (root / "musan" / "music" / "fma").mkdir(parents=True)
    sf.write(root / "musan" / "music" / "fma" / "music-0000.wav", np.zeros(16_000, np.float32), 16_000)
    fma = root / "fma"
    (fma / "fma_large" / "000").mkdir(parents=True)
    for tid, cid in ((2, "mv_spleeter_audio_example"), (5, "mi_librosa_brahms")):
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-t",
                "3",
                "-i",
                str(realaudio / "flac" / f"{cid}.flac"),
                "-ar",
                "44100",
                "-ac",
                "2",
                str(fma / "fma_large" / "000" / f"{tid:06d}.mp3"),
            ],
            check=True,
        )
    (fma / "fma_metadata").mkdir()
    (fma / "fma_metadata" / "tracks.csv").write_text(TRACKS_CSV)
    return root


@pytest.fixture(scope="module")
def libri_run(corpora, tmp_path_factory):
    return librispeech_run_dir(corpora / "LibriSpeech", tmp_path_factory.mktemp("runs") / "libri")


def test_librispeech_becomes_a_run_directory(libri_run, corpora):
    segs = manifest.read_segments(libri_run / "variants" / "librispeech")
    assert len(segs) == 18 and {s.speaker for s in segs} == set(SPEAKERS.values())
    first = next(s for s in segs if s.recording_id == "1001-100-0000")
    assert first.start_s == 0.0 and first.duration_s == pytest.approx(audio.probe(first.audio_path).duration_s)
    assert first.text.startswith("TEXT OF SP_EN_SBASR_SPK1")
    recs = manifest.read_table(libri_run / "recordings.parquet", "recordings").to_pylist()
    assert json.loads(recs[0]["metadata"])["chapter"] in ("100", "101")
    stats = json.loads((libri_run / "stats.json").read_text())
    assert stats["variants"]["librispeech"]["segments"] == 18
    assert manifest.read_table(libri_run / "failures.parquet", "failures").num_rows == 0
    _, utts = run_utterances(libri_run, "librispeech")
    assert {u.session for u in utts} == {f"{s}-{c}" for s in SPEAKERS.values() for c in ("100", "101")}
    with pytest.raises(CorpusError, match="no LibriSpeech subset"):
        librispeech_run_dir(corpora / "musan", corpora / "x")


def test_musan_categories_and_fma_metadata(corpora):
    noise = read_musan(corpora / "musan")
    assert [c.clip_id for c in noise] == [
        "noise/free-sound/free-sound-0000.wav",
        "noise/free-sound/free-sound-0001.wav",
        "noise/sound-bible/sound-bible-0002.wav",
    ]
    assert len(read_musan(corpora / "musan", ["noise", "music"])) == 4
    with pytest.raises(CorpusError, match="speech: MUSAN category folder not found"):
        read_musan(corpora / "musan", ["speech"])
    tracks = read_fma(corpora / "fma")
    assert [(t.track_id, t.genre_top, t.instrumental) for t in tracks] == [
        (2, "Hip-Hop", False),
        (5, "Instrumental", True),
    ]
    with pytest.raises(CorpusError, match="no FMA audio"):
        read_fma(corpora / "musan")


def test_preview_writes_corrupted_wavs_with_sidecars(corpora, libri_run, tmp_path):
    out = tmp_path / "prev"
    res = CliRunner().invoke(
        app,
        [
            "corrupt",
            "preview",
            "--condition",
            "mix-noise-33",
            "--speech",
            str(corpora / "LibriSpeech"),
            "--noise",
            str(corpora / "musan"),
            "--out",
            str(out),
            "-n",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    for k in range(4):
        side = json.loads((out / f"{k:02d}.json").read_text())
        y, clean = audio.load(out / f"{k:02d}.wav"), audio.load(out / f"{k:02d}.clean.wav")
        assert side["condition"] == "mix-noise-33" and side["source_id"].startswith("noise/")
        assert y.size == clean.size == side["num_samples"]
        assert realized_snr_db(clean, y) == pytest.approx(side["snr_db"], abs=0.5)  # 16-bit WAV rounding included
    res = CliRunner().invoke(
        app,
        [
            "corrupt",
            "preview",
            "--condition",
            "2spk-concat",
            "--speech",
            str(libri_run),
            "--out",
            str(tmp_path / "cat"),
            "-n",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "cat" / "00.json").read_text())
    assert side["first"]["speaker"] != side["second"]["speaker"]
    res = CliRunner().invoke(
        app,
        ["corrupt", "preview", "--condition", "mix-vocal-10", "--speech", str(libri_run), "--out", str(tmp_path / "x")],
    )
    assert res.exit_code != 0 and "--stems" in res.output


def test_transform_built_from_a_trainer_config(corpora):
    from curate.corrupt import CorruptionTransform

    t = CorruptionTransform("mix-noise-50", {"noise": str(corpora / "musan")}, seed=0)
    waves = [np.full(4000, 0.1, np.float32), np.full(6000, 0.1, np.float32)]
    out, events = t(waves, 0, 0, False)
    assert (
        len(events) == 1
        and events[0].source_id.startswith("noise/")
        and out[events[0].index].size == 2000 + 2000 * (1 + events[0].index)
    )
    with pytest.raises(ValueError, match="unknown key"):
        CorruptionTransform("mix-noise-50", {"nosie": "x"})


@pytest.mark.parametrize("condition", ["sub-music-33", "1spk-concat"])
def test_render_is_a_deterministic_run_directory(condition, corpora, libri_run, tmp_path):
    args = [
        "corrupt",
        "render",
        "--condition",
        condition,
        "--speech",
        str(libri_run),
        "--variant",
        "librispeech",
        "--music",
        str(corpora / "fma"),
        "--batch-size",
        "6",
        "--seed",
        "3",
    ]
    for name in ("a", "b"):
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])  # a rerun resumes: nothing left to do
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [*args[:-1], "4", "--out", str(tmp_path / "a")])
    assert res.exit_code != 0 and "another condition, seed" in res.output
    variant = f"librispeech-{condition}"
    a = manifest.read_segments(tmp_path / "a" / "variants" / variant)
    b = manifest.read_segments(tmp_path / "b" / "variants" / variant)
    assert len(a) == 18 and [s.segment_id for s in a] == [s.segment_id for s in b]
    for sa, sb in zip(a[:6], b[:6], strict=True):
        assert np.array_equal(audio.load(sa.audio_path), audio.load(sb.audio_path))
    recs = {
        r["recording_id"]: json.loads(r["metadata"])
        for r in manifest.read_table(tmp_path / "a" / "recordings.parquet", "recordings").to_pylist()
    }
    src = {s.segment_id: s for s in manifest.read_segments(libri_run / "variants" / "librispeech")}
    if condition == "sub-music-33":
        assert sum(m["corrupted"] for m in recs.values()) == 3 * 2  # 3 batches of 6, a third of each
        for s in a:
            orig = src[recs[s.recording_id]["sources"][0]]
            assert s.duration_s == pytest.approx(orig.duration_s, abs=1e-3)  # lengths preserved
    else:
        for s in a:
            first, second = (src[k] for k in recs[s.recording_id]["sources"])
            assert first.recording_id.rsplit("-", 1)[0] == second.recording_id.rsplit("-", 1)[0]  # same chapter
            assert s.duration_s == pytest.approx(first.duration_s + second.duration_s, abs=1e-3)


@pytest.fixture(scope="module")
def tiny_demucs(tmp_path_factory):
    """The real Demucs architecture with random weights, saved as a local `.th` package."""
    from demucs.demucs import Demucs

    from curate.corrupt.stems import save_demucs_package

    repo = tmp_path_factory.mktemp("demucs")
    save_demucs_package(
        Demucs(sources=["drums", "bass", "other", "vocals"], channels=4, depth=2, segment=4), repo / "tiny.th"
    )
    return repo


def test_stems_separate_check_vocals_and_resume(corpora, tiny_demucs, tmp_path):
    import torch

    from curate.corrupt.stems import StemsConfig, fma_items, read_stems_manifest, separate_stems, stems_pools

    threads = torch.get_num_threads()
    cfg = StemsConfig(model="tiny", repo=str(tiny_demucs), device="cpu", threads=1)
    items = fma_items(read_fma(corpora / "fma"))
    seen: list[dict] = []
    try:
        separate_stems(items[:1], tmp_path, cfg, runner="local", on_progress=seen.append)
        separate_stems(items, tmp_path, cfg, runner="local", on_progress=seen.append)  # resumes: 1 done, 1 new
    finally:
        torch.set_num_threads(threads)
    assert [r.get("skipped", False) for r in seen] == [False, True, False]
    rows = read_stems_manifest(tmp_path)
    assert [r["track_id"] for r in rows] == ["000002", "000005"]
    for r in rows:
        voc, info = audio.load(r["vocals_path"]), sf.info(r["accompaniment_path"])
        assert info.samplerate == 16_000 and info.channels == 1 and voc.size == pytest.approx(3 * 16_000, abs=400)
        assert 0.0 <= r["speech_ratio"] <= 1.0 and r["has_vocals"] == (r["speech_ratio"] >= cfg.min_speech_ratio)
    instr, vocals = stems_pools(tmp_path)
    assert len(instr) == 2 and len(vocals) == sum(r["has_vocals"] for r in rows)


@pytest.mark.slow
def test_speech_activity_check_tells_vocals_from_instrumental(realaudio):
    from curate.corrupt.stems import load_vad, speech_ratio

    vad = load_vad()
    speech = speech_ratio(audio.load(realaudio / "flac" / "sp_en_jfk.flac"), vad)
    instrumental = speech_ratio(audio.load(realaudio / "flac" / "mi_librosa_vibeace.flac", 0, 20), vad)
    assert speech > 0.6 and instrumental < 0.2 <= speech


@pytest.mark.slow
def test_stems_run_as_a_ray_actor_pool(corpora, tiny_demucs, tmp_path):
    from curate.corrupt.stems import StemsConfig, fma_items, read_stems_manifest, separate_stems

    cfg = StemsConfig(model="tiny", repo=str(tiny_demucs), device="auto", vad="none")
    items = fma_items(read_fma(corpora / "fma"))[:1]
    separate_stems(items, tmp_path, cfg, runner="ray", num_workers=1)
    rows = read_stems_manifest(tmp_path)
    assert len(rows) == 1 and rows[0]["speech_ratio"] is None and Path(rows[0]["vocals_path"]).is_file()
