"""A plain ``pip install .`` (no extras) is an install sized to the job: in a fresh virtualenv it brings no PyTorch,
and ``curate run`` (a model-free pipeline), ``stats``, ``select``, ``inspect`` and the exports that need no extra
work on a run without importing torch (checked through ``sys.modules`` after each command).

Slow (a fresh venv and its packages: pip's wheel cache and the configured indexes keep it to a few minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Runs a curate command in-process, then reports which heavy modules it imported.
PROBE = """
import runpy, sys
sys.argv = ["curate", *sys.argv[1:]]
try:
    runpy.run_module("curate.cli", run_name="__main__")
except SystemExit as e:
    code = e.code or 0
else:
    code = 0
heavy = sorted(m for m in ("torch", "torchaudio", "lightning", "pyannote.audio", "whisper", "transformers") if m in sys.modules)
print("HEAVY", ",".join(heavy) or "-", file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.slow
def test_a_plain_install_runs_stats_select_and_export_without_torch(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"PYTHONNOUSERSITE": "1"}
    pip = subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-compile", str(REPO)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    found = subprocess.run(
        [py, "-c", "import importlib.util as u; print(u.find_spec('torch') is None, u.find_spec('curate').origin)"],
        env=env, capture_output=True, text=True, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert found.stdout.split()[0] == "True" and str(REPO) not in found.stdout, found.stdout  # the installed copy

    (tmp_path / "probe.py").write_text(PROBE)
    catalog = make_catalog(tmp_path)
    run = tmp_path / "run"
    commands = [
        ["run", str(REPO / "pipelines" / "seq.yaml"), "--catalog", str(catalog), "--out", str(run), "--runner", "local",
         "--set", "naive_segment.window_s=4"],
        ["stats", str(run), "--json"],
        ["select", str(run), "--variant", "seq"],
        ["inspect", str(run), "--variant", "seq"],
        *[["export", str(run), "--variant", "seq", "--format", f, "--out", str(tmp_path / f), "--runner", "local"]
          for f in ("nemo", "kaldi", "fairseq", "webdataset")],
    ]  # fmt: skip
    for args in commands:
        res = subprocess.run(
            [py, str(tmp_path / "probe.py"), *args], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600
        )
        assert res.returncode == 0, f"{args[0]}: {res.stdout[-2000:]}{res.stderr[-2000:]}"
        assert "HEAVY -" in res.stderr, f"{' '.join(args[:1])} imported {res.stderr.split('HEAVY')[-1]}"
    assert (tmp_path / "fairseq" / "train.tsv").is_file() and (tmp_path / "kaldi" / "train" / "wav.scp").is_file()


def make_catalog(root: Path) -> Path:
    """Two short tone recordings and their catalog, written with this environment's curate."""
    from curate.testing import make_archive

    return make_archive(root / "archive", n=2, duration_s=9.0)
