"""WhisperX pass end to end with real models: cut & merge, and `curate run pipelines/whisperx.yaml` on a
two-speaker programme built from real clips, checking all five wx variants and their rules."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from curate.errors import ConfigError
from curate.models.vad import FrameScores
from curate.stages.wx_transcribe import WxTranscribe, merge_chunks, merge_regions

# Two speakers, alternating: LibriSpeech 2412 (female), JFK (male), LibriSpeech 2412 again.
CLIPS = ["sp_en_libri_2412-153948-0000", "sp_en_jfk", "sp_en_libri_2412-153948-0001"]


def test_merge_chunks_keeps_chunks_under_the_limit():
    # 70 s of speech with dips every 7 s: chunks ≤ 30 s that cover all of it, cut at dips
    step = 0.1
    vals = np.full(700, 0.9, dtype=np.float32)
    vals[69::70] = 0.2
    chunks = merge_chunks(FrameScores(vals, 0.0, step, step), chunk_s=30.0)
    assert chunks and all(e - s <= 30.0 + 1e-6 for s, e in chunks)
    assert chunks[0][0] < 0.2 and chunks[-1][1] > 69.5
    assert merge_chunks(FrameScores(np.zeros(50, dtype=np.float32), 0.0, step, step)) == []


def test_merge_regions_joins_neighbours_up_to_the_limit():
    assert merge_regions([(0, 10), (11, 20), (21, 35), (36, 40)], 30.0) == [(0.0, 20.0), (21.0, 40.0)]
    assert merge_regions([], 30.0) == []


@pytest.mark.parametrize(
    "params", [{"chunk_s": 45}, {"vad": "webrtc"}, {"batch_size": 0}, {"vad_onset": 0.3, "vad_offset": 0.5}]
)
def test_wx_transcribe_validation(params):
    with pytest.raises(ConfigError):
        WxTranscribe(**params).validate()


@pytest.fixture(scope="module")
def programme(tmp_path_factory, realaudio):
    from curate import audio
    from curate.testing import make_catalog, write_audio

    root = tmp_path_factory.mktemp("wx")
    gap = np.zeros(16000, dtype=np.float32)
    parts = []
    for c in CLIPS:
        parts += [audio.load(realaudio / "flac" / f"{c}.flac"), gap]
    write_audio(root / "two.flac", np.concatenate(parts))
    return make_catalog(
        root / "catalog.csv", [{"recording_id": "two", "audio_path": "two.flac", "title": "Talk", "language": "en"}]
    )


@pytest.mark.slow
def test_curate_run_whisperx_pipeline_end_to_end(tmp_path, programme, repo):
    from typer.testing import CliRunner

    from curate import manifest
    from curate.cli.app import app

    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(repo / "pipelines" / "whisperx.yaml"),
            "--catalog",
            str(programme),
            "--out",
            str(out),
            "--runner",
            "local",
            "--set",
            "wx_transcribe.model=faster-whisper:tiny.en",
            "--set",
            "wx_transcribe.beam_size=1",
            "--set",
            "wx_transcribe.device=cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    seg = {
        v: sorted(manifest.read_segments(out / "variants" / v), key=lambda s: s.start_s)
        for v in ("wx-asr", "wx-align", "wx-diar", "wx-diar-1s", "wx-diar-3s")
    }
    asr = seg["wx-asr"]
    assert asr and all(s.duration_s <= 30.0 and s.text for s in asr)
    assert "fellow americans" in " ".join(s.text.lower() for s in asr)
    # wx-align: sentence segments inside the chunks, word times inside the segment
    for s in seg["wx-align"]:
        assert any(c.start_s - 1e-6 <= s.start_s < s.end_s <= c.end_s + 1e-6 for c in asr)
        assert s.words and all(s.start_s - 1e-6 <= w.start_s <= w.end_s <= s.end_s + 1e-6 for w in s.words)
    assert len(seg["wx-align"]) > len(asr)
    # wx-diar: every segment labelled; the JFK part and the LibriSpeech parts get different speakers
    diar = seg["wx-diar"]
    assert diar and all(s.speaker and s.speaker.startswith("S") for s in diar)
    jfk = {s.speaker for s in diar if "americans" in (s.text or "").lower()}
    libri = {s.speaker for s in diar if "reader" in (s.text or "").lower()}
    assert jfk and libri and not jfk & libri
    # derived: 1 s / 3 s minimum, 30 s maximum, single-speaker, same-speaker neighbours merged
    for v, min_s in (("wx-diar-1s", 1.0), ("wx-diar-3s", 3.0)):
        segs = seg[v]
        assert segs and all(min_s <= s.duration_s <= 30.0 for s in segs)
        assert all(s.speaker for s in segs)
        for a, b in itertools.pairwise(segs):
            assert a.speaker != b.speaker or b.start_s - a.end_s > 3.0 or a.duration_s + b.duration_s > 30.0
    run = json.loads((out / "run.json").read_text())
    assert run["stage_info"]["wx_align"]["method"] == "whisper_words"  # no wav2vec2 model offline
    assert "not available" in run["stage_info"]["wx_align"]["fallback_reason"]


@pytest.mark.slow
def test_ray_stage_pools_match_the_local_runner(tmp_path, programme):
    """Each model stage as its own Ray actor pool gives exactly the local runner's variants."""
    from curate import manifest
    from curate.config import parse_pipeline
    from curate.runners import driver, local
    from curate.runners import ray as ray_runner

    pipe = parse_pipeline(
        {
            "name": "pools",
            "settings": {"shard_size": 1},
            "passes": {
                "sad": [{"stage": "sad_segment", "backend": "silero", "emit": "sad"}],
                "seq": [{"stage": "naive_segment", "window_s": 10, "emit": "seq"}],
            },
            "derive": {"sad-3s": {"from": "sad", "stages": [{"stage": "min_duration", "min_s": 3}]}},
        }
    )
    outs = {}
    for name in ("local", "pools"):
        plan = driver.prepare(pipe, programme, tmp_path / name)
        (local.execute if name == "local" else ray_runner.execute_stage_pools)(plan)
        driver.finalize(plan, name, {})
        outs[name] = {
            v: sorted((s.segment_id, s.variant) for s in manifest.read_segments(tmp_path / name / "variants" / v))
            for v in ("sad", "seq", "sad-3s")
        }
    assert outs["pools"] == outs["local"] and all(outs["local"].values())
