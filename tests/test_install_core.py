"""A plain ``pip install .`` (no extras) is an install sized to the job: in a fresh virtualenv it brings no PyTorch,
and ``curate run`` (a model-free pipeline), ``stats``, ``select``, ``inspect`` and the exports that need no extra
work on a run without importing torch (checked through ``sys.modules`` after each command).

No download: the distributions curate's core requirements need (pyproject's ``dependencies``, transitively) are
linked into the fresh venv from this environment (the locked versions, :mod:`curate.testing.install`), then pip
installs curate's wheel there from no index, so pip itself checks that they are all it needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Runs curate commands in turn in one process (arguments: one JSON list per command), and after each reports
# which heavy modules the process has imported so far.
PROBE = """
import json, runpy, sys
for args in map(json.loads, sys.argv[1:]):
    sys.argv = ["curate", *args]
    try:
        runpy.run_module("curate.cli", run_name="__main__")
    except SystemExit as e:
        code = e.code or 0
    else:
        code = 0
    heavy = sorted(m for m in ("torch", "torchaudio", "lightning", "pyannote.audio", "whisper", "transformers") if m in sys.modules)
    print("DONE", args[0], code, ",".join(heavy) or "-", file=sys.stderr, flush=True)
    if code:
        sys.exit(code)
"""


@pytest.mark.slow
def test_a_plain_install_runs_stats_select_and_export_without_torch(tmp_path):
    from curate.testing.install import closure, link_distributions

    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    dists = closure(core)
    assert "torch" not in dists and "pyarrow" in dists and "ray" in dists, sorted(dists)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    (site,) = venv.glob("lib/python3*/site-packages")
    assert link_distributions(dists, site) > 1000
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(wheels)],
        check=True, capture_output=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = wheels.glob("curate-*.whl")
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"PYTHONNOUSERSITE": "1"}
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-compile", "--no-index", str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
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
    res = subprocess.run(
        [py, str(tmp_path / "probe.py"), *map(json.dumps, commands)],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=900,
    )  # fmt: skip
    done = [line.split() for line in res.stderr.splitlines() if line.startswith("DONE ")]
    assert res.returncode == 0 and len(done) == len(commands), f"{res.stdout[-2000:]}{res.stderr[-2000:]}"
    for args, (_, name, _, heavy) in zip(commands, done, strict=True):
        assert name == args[0] and heavy == "-", f"{args[0]} imported {heavy}"  # nothing heavy so far, after each
    assert (tmp_path / "fairseq" / "train.tsv").is_file() and (tmp_path / "kaldi" / "train" / "wav.scp").is_file()


def make_catalog(root: Path) -> Path:
    """Two short tone recordings and their catalog, written with this environment's curate."""
    from curate.testing import make_archive

    return make_archive(root / "archive", n=2, duration_s=9.0)
