"""`curate derive`: new variants from a run's saved w-raw, without loading any model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from curate import manifest
from curate.cli.app import app
from curate.config import load_pipeline
from curate.errors import ConfigError
from curate.runners import run_pipeline
from curate.runners.derive import DeriveError, derive, load_derivation
from curate.stages import whisper as W
from curate.testing import make_archive

# What the scripted "model" says for every recording (times in seconds).
SCRIPT = [
    (0.0, 3.0, "[Muziek]"),
    (3.0, 5.0, "Dit is"),
    (5.5, 7.5, "een zin."),
    (9.0, 10.5, "Kort."),
    (12.0, 16.0, "Vier seconden."),
    (20.0, 64.0, "Een heel lang verhaal."),
]


def scripted_setup(self) -> None:
    self._rt_model, self._rt_info = object(), {"backend": "scripted"}


def scripted_transcribe(self, audio, language):
    return [{"start": s, "end": e, "text": t} for s, e, t in SCRIPT], language


def no_model(self) -> None:
    raise AssertionError("derive must never load a model")


@pytest.fixture
def whisper_run(tmp_path, repo, monkeypatch):
    """A finished run of pipelines/whisper.yaml with a scripted transcriber (3 recordings, 2 shards)."""
    monkeypatch.setattr(W.WhisperTranscribe, "setup", scripted_setup)
    monkeypatch.setattr(W.WhisperTranscribe, "transcribe", scripted_transcribe)
    catalog = make_archive(tmp_path / "archive", n=3, duration_s=65.0)
    pipe = load_pipeline(repo / "pipelines" / "whisper.yaml", ["settings.shard_size=2"])
    run_pipeline(pipe, catalog, tmp_path / "run", runner="local")
    monkeypatch.setattr(W.WhisperTranscribe, "setup", no_model)
    return tmp_path / "run"


def test_run_derives_w_pp_variants_in_the_same_pass(whisper_run):
    raw = manifest.read_segments(whisper_run / "variants" / "w-raw")
    assert len(raw) == 3 * len(SCRIPT)
    pp1 = manifest.read_segments(whisper_run / "variants" / "w-pp-1s")
    pp3 = manifest.read_segments(whisper_run / "variants" / "w-pp-3s")
    # [Muziek] dropped; "Dit is" + "een zin." merged (3.0-7.5); "Kort." 1.5 s; "Vier seconden."; 44 s halved
    per_rec_1 = sorted((s.start_s, s.end_s) for s in pp1 if s.recording_id == "rec000")
    assert per_rec_1 == [(3.0, 7.5), (9.0, 10.5), (12.0, 16.0), (20.0, 42.0), (42.0, 64.0)]
    assert sorted((s.start_s, s.end_s) for s in pp3 if s.recording_id == "rec000") == [
        (3.0, 7.5),
        (12.0, 16.0),
        (20.0, 42.0),
        (42.0, 64.0),
    ]
    rejected = manifest.read_table(whisper_run / "rejected" / "drop_phrases", "rejected").to_pylist()
    assert {r["text"] for r in rejected} == {"[Muziek]"}


def test_derive_new_variant_without_a_model(whisper_run, repo):
    pipe = load_derivation(whisper_run, repo / "pipelines" / "post" / "w-pp-5s.yaml", "w-raw")
    entry = derive(whisper_run, pipe)
    segs = manifest.read_segments(whisper_run / "variants" / "w-pp-5s")
    assert sorted((s.start_s, s.end_s) for s in segs if s.recording_id == "rec001") == [(20.0, 42.0), (42.0, 64.0)]
    assert all(5.0 <= s.duration_s <= 30.0 and s.variant == "w-pp-5s" for s in segs)
    assert entry["segments"] == {"w-pp-5s": 6}
    # one output part per source part (each holds whole recordings of one shard)
    src_parts = sorted(p.name for p in (whisper_run / "variants" / "w-raw").glob("part-*.parquet"))
    assert sorted(p.name for p in (whisper_run / "variants" / "w-pp-5s").glob("part-*.parquet")) == src_parts
    stats = json.loads((whisper_run / "stats.json").read_text())
    assert set(stats["variants"]) == {"w-raw", "w-pp-1s", "w-pp-3s", "w-pp-5s"}
    assert stats["variants"]["w-pp-5s"]["segments"] == 6 and stats["variants"]["w-pp-5s"]["min_s"] == 22.0
    assert "w-pp-5s" in (whisper_run / "stats.md").read_text()
    run = json.loads((whisper_run / "run.json").read_text())
    assert run["derived"][-1]["variants"] == ["w-pp-5s"] and run["derived"][-1]["from"] == ["w-raw"]
    assert "w-pp-5s" in run["variants"]
    # the run's own rejected parts are untouched; the derivation's sit next to them, labelled
    rej = manifest.read_table(whisper_run / "rejected" / "min_duration", "rejected").to_pylist()
    assert {r["variant"] for r in rej} >= {"w-pp-5s"}
    assert any(p.name.endswith(".w-pp-5s.parquet") for p in (whisper_run / "rejected" / "min_duration").iterdir())


def test_derive_refuses_existing_variants_unknown_sources_and_models(whisper_run, repo, tmp_path):
    post = repo / "pipelines" / "post" / "w-pp-3s.yaml"
    with pytest.raises(DeriveError, match="already exist"):
        load_derivation(whisper_run, post, "w-raw")
    before = manifest.read_segments(whisper_run / "variants" / "w-pp-3s")
    derive(whisper_run, load_derivation(whisper_run, post, "w-raw", force=True))
    assert sorted(s.segment_id for s in manifest.read_segments(whisper_run / "variants" / "w-pp-3s")) == sorted(
        s.segment_id for s in before
    )  # same rules, same segments
    with pytest.raises(DeriveError, match="no variant 'wx-asr'"):
        load_derivation(whisper_run, repo / "pipelines" / "post" / "w-pp-5s.yaml", "wx-asr")
    bad = tmp_path / "model.yaml"
    bad.write_text("name: x\nderive:\n  w-x:\n    from: w-raw\n    stages:\n      - stage: whisper_transcribe\n")
    with pytest.raises(ConfigError, match="loads a model"):
        load_derivation(whisper_run, bad)
    with pytest.raises(DeriveError, match=r"run\.json"):
        load_derivation(tmp_path, post)


def test_derive_cli(whisper_run, repo):
    result = CliRunner().invoke(
        app,
        [
            "derive",
            str(whisper_run),
            "--from",
            "w-raw",
            "--pipeline",
            str(repo / "pipelines" / "post" / "w-pp-5s.yaml"),
            "--set",
            "min_duration.min_s=4",
        ],
    )
    assert result.exit_code == 0, result.output
    segs = manifest.read_segments(whisper_run / "variants" / "w-pp-5s")
    assert min(s.duration_s for s in segs) == 4.0  # "Vier seconden." survives min_s=4
    result = CliRunner().invoke(
        app,
        [
            "derive",
            str(whisper_run),
            "--from",
            "w-raw",
            "--pipeline",
            str(repo / "pipelines" / "post" / "w-pp-5s.yaml"),
        ],
    )
    assert result.exit_code == 2 and "already exist" in result.output


def _save_tags(run_dir, music_at: tuple[float, float]) -> None:
    """Frame scores as the tag_events pass would have saved them: speech everywhere, music in ``music_at``."""
    import numpy as np

    from curate.rundir import RunDir
    from curate.schema import Frames

    rd = RunDir(run_dir)
    for r in manifest.read_table(rd.recordings, "recordings").to_pylist():
        start = np.arange(0.0, r["duration_s"], 0.48)
        mid = start + 0.48
        music = ((mid > music_at[0]) & (mid < music_at[1])).astype(float)
        z = np.zeros(len(start))
        f = Frames("tags", start, start + 0.96, {"speech": np.ones(len(start)), "music": music,
                                                  "vocal_music": z, "noise": z, "energy_db": np.full(len(start), -20.0)})  # fmt: skip
        manifest.write_table(rd.scores_path("tags", r["recording_id"]), f.to_arrow(), "tags")


def test_derive_clean_variant_from_saved_frame_scores(whisper_run, repo):
    """post/w-pp-3s-clean.yaml re-runs from scores/ alone: music cut out (a rejected row with its reason), the
    3 s minimum re-applied, quality columns filled — and no model loaded (the fixture's setup raises)."""
    _save_tags(whisper_run, (12.5, 14.5))
    pipe = load_derivation(whisper_run, repo / "pipelines" / "post" / "w-pp-3s-clean.yaml")
    derive(whisper_run, pipe)
    clean = [
        s for s in manifest.read_segments(whisper_run / "variants" / "w-pp-3s-clean") if s.recording_id == "rec000"
    ]
    spans = sorted((round(s.start_s, 2), round(s.end_s, 2)) for s in clean)
    assert (12.0, 16.0) not in spans and all(not (s < 13.5 < e) for s, e in spans)  # the music is gone
    assert all(s.music_ratio == 0.0 and s.speech_ratio == 1.0 and s.snr_db is not None for s in clean)
    rej = manifest.read_table(whisper_run / "rejected" / "clean_trim", "rejected").to_pylist()
    assert any(r["reason"] == "music" and r["score"] is not None and r["variant"] == "w-pp-3s-clean" for r in rej)
    short = manifest.read_table(whisper_run / "rejected" / "min_duration", "rejected").to_pylist()
    assert any(r["variant"] == "w-pp-3s-clean" for r in short)  # the pieces left beside the music are < 3 s


def test_derive_clean_without_scores_says_what_to_run(whisper_run, repo):
    from curate.errors import RecordingError

    pipe = load_derivation(whisper_run, repo / "pipelines" / "post" / "w-pp-3s-clean.yaml")
    with pytest.raises(RecordingError, match="tag_events"):
        derive(whisper_run, pipe)
