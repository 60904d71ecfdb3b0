"""Materialize: the index/audio layout the pre-trainer reads, exact samples, bounded shards, resume after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curate import audio, manifest
from curate.export.materialize import MaterializeError, _stream_spans, materialize, read_segment, to_int16
from curate.export.select import load_segments
from curate.testing.export import LABELLED, make_labelled_run

CONTRACT = [
    "segment_id",
    "recording_id",
    "shard",
    "offset",
    "num_samples",
    "sample_rate",
    "start_s",
    "end_s",
    "duration_s",
    "text",
    "speaker",
    "language",
    "variant",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_labelled_run(tmp_path_factory.mktemp("mat"), n=4)


def _reference(run_dir: Path) -> dict[str, dict]:
    return {r["segment_id"]: r for r in load_segments(run_dir, LABELLED).to_dict("records")}


def test_flac_layout_and_exact_samples(run_dir, tmp_path):
    info = materialize(run_dir, LABELLED, tmp_path, fmt="flac", runner="local")
    table = manifest.read_table(tmp_path / "index.parquet", "materialized")
    assert table.schema.names == CONTRACT
    segs = _reference(run_dir)
    rows = table.to_pylist()
    assert len(rows) == len(segs) == info["segments"]
    for r in rows:
        seg = segs[r["segment_id"]]
        assert r["shard"] == f"audio/{r['recording_id']}/{r['segment_id']}.flac" and r["offset"] == 0
        assert (r["start_s"], r["end_s"], r["text"], r["speaker"]) == (
            seg["start_s"],
            seg["end_s"],
            seg["text"],
            seg["speaker"],
        )
        x, sr = sf.read(tmp_path / r["shard"], dtype="int16")
        assert sr == r["sample_rate"] == 16000 and len(x) == r["num_samples"]
        np.testing.assert_array_equal(x, to_int16(audio.load(seg["audio_path"], seg["start_s"], seg["end_s"])))


def test_pcm16_shards_are_bounded_and_exact(run_dir, tmp_path):
    shard_bytes = 10 * 16000 * 2  # 10 s of audio per shard: 2 segments of 5 s
    materialize(run_dir, LABELLED, tmp_path, fmt="pcm16", runner="local", shard_bytes=shard_bytes)
    rows = manifest.read_table(tmp_path / "index.parquet", "materialized").to_pylist()
    segs = _reference(run_dir)
    shards = sorted((tmp_path / "shards").iterdir())
    assert [p.name for p in shards] == [f"shard-{i:05d}.pcm16" for i in range(len(shards))]
    assert len(shards) == len(segs) // 2 and all(p.stat().st_size <= shard_bytes for p in shards)
    ends: dict[str, int] = {}
    for r in rows:  # segments are concatenated in order, back to back
        assert r["offset"] == ends.get(r["shard"], 0)
        ends[r["shard"]] = r["offset"] + r["num_samples"]
        raw = np.fromfile(tmp_path / "shards" / r["shard"], dtype="<i2")[r["offset"] : r["offset"] + r["num_samples"]]
        seg = segs[r["segment_id"]]
        np.testing.assert_array_equal(raw, to_int16(audio.load(seg["audio_path"], seg["start_s"], seg["end_s"])))
        np.testing.assert_array_equal(read_segment(tmp_path, r), raw)
    assert {p.name: p.stat().st_size for p in shards} == {k: 2 * v for k, v in ends.items()}


def test_streaming_decode_equals_range_reads(run_dir):
    segs = sorted(_reference(run_dir).values(), key=lambda s: (s["recording_id"], s["start_s"]))
    rec = [s for s in segs if s["recording_id"] == "rec001"]
    spans = [(s["start_s"], s["end_s"]) for s in rec][1:]  # a gap at the start, then dense
    spans.append((spans[-1][1] - 0.25, spans[-1][1] + 5))  # overlapping, running past the end of the file
    got = list(_stream_spans(rec[0]["audio_path"], spans, block_s=1.7))
    for (s, e), x in zip(spans, got, strict=True):
        np.testing.assert_array_equal(x, audio.load(rec[0]["audio_path"], s, e))


def test_unseekable_dense_recording_is_streamed_once(tmp_path, monkeypatch):
    from curate.export import materialize as mat
    from curate.testing import tone, write_audio

    path = str(write_audio(tmp_path / "prog.m4a", tone(20.0)))
    spans = [(2.0 * i, 2.0 * i + 2.0) for i in range(10)]
    calls = []
    monkeypatch.setattr(mat.audio, "load", lambda *a, **k: calls.append(a))
    got = list(mat.segment_audio(path, spans))
    assert not calls  # no per-segment ffmpeg process
    assert [len(x) for x in got] == [32000] * 10
    monkeypatch.undo()
    ref = audio.load(path, 6.0, 8.0)
    assert np.corrcoef(ref, got[3])[0, 1] > 0.99


def test_other_plan_in_out_dir_is_refused(run_dir, tmp_path):
    materialize(run_dir, LABELLED, tmp_path, fmt="flac", runner="local")
    with pytest.raises(MaterializeError, match="holds another materialization"):
        materialize(run_dir, LABELLED, tmp_path, fmt="pcm16", runner="local")


_SCRIPT = """
import sys, time
import curate.export.materialize as m
orig = m.segment_audio
def slow(path, spans):  # slow enough that the kill lands in the middle of the work
    for x in orig(path, spans):
        time.sleep(0.04)
        yield x
m.segment_audio = slow
m.materialize(sys.argv[1], "{variant}", sys.argv[2], fmt=sys.argv[3], runner="local", shard_bytes=15 * 32000)
"""


def _snapshot(d: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and "_progress" not in p.parts and p.name not in ("materialize.json",)
    }


def _units_done(d: Path) -> int:
    return len(list((d / "_progress" / "done").glob("*.json")))


@pytest.mark.parametrize("fmt", ["flac", "pcm16"])
def test_resume_after_kill_equals_uninterrupted(run_dir, tmp_path, fmt):
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(variant=LABELLED)))
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir), str(killed), fmt], env=env)
    deadline = time.monotonic() + 60
    while _units_done(killed) < 1:
        assert proc.poll() is None and time.monotonic() < deadline, "materialize ended before it could be killed"
        time.sleep(0.01)
    time.sleep(0.1)  # into the next unit
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "index.parquet").exists()
    done_before = _units_done(killed)
    materialize(run_dir, LABELLED, killed, fmt=fmt, runner="local", shard_bytes=15 * 32000)
    clean = tmp_path / "clean"
    materialize(run_dir, LABELLED, clean, fmt=fmt, runner="local", shard_bytes=15 * 32000)
    units = _units_done(clean)
    assert 1 <= done_before < units
    assert _snapshot(killed) == _snapshot(clean)
    assert not list(killed.rglob("*.tmp"))


@pytest.mark.slow
def test_ray_runner_matches_local(run_dir, tmp_path):
    pytest.importorskip("ray")
    materialize(run_dir, LABELLED, tmp_path / "ray", fmt="flac", runner="ray")
    materialize(run_dir, LABELLED, tmp_path / "local", fmt="flac", runner="local")
    assert _snapshot(tmp_path / "ray") == _snapshot(tmp_path / "local")
