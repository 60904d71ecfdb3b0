"""A wheel installed outside the checkout finds its presets (pipelines, pre-training, corruption, fine-tuning,
ablation and selection configs) by name, as a user on a GPU node without the source tree would."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHECK = """
import curate, pathlib, sys
assert not curate.__file__.startswith(sys.argv[1]), curate.__file__
from curate import presets
from curate.config import load_pipeline
from curate.w2v2.config import load_config
from curate.corrupt import load_condition
from curate.ablation.config import load_ablation, load_finetune_config
from curate.export.select import load_selection
print('pipelines', len(presets.names('pipelines')), load_pipeline('demo').name, load_pipeline('pipelines/seq.yaml').name)
print('pretrain', load_config('tiny-cpu').model.layers)
print('corruption', load_condition('mix-noise-33').name)
print('finetune', load_finetune_config('configs/finetune/tiny-cpu.yaml').lr)
print('ablation', load_ablation('tiny-demo').name)
print('selection', load_selection('clean-10h') is not None)
"""


@pytest.mark.slow
def test_wheel_outside_the_checkout_finds_its_presets(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(wheels)],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("curate-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (target,) = venv.glob("lib/python3*/site-packages")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The wheel's curate first, then this environment's dependencies (a .pth line appends them after the
    # standard library; this environment's editable curate is not activated that way).
    (target / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONNOUSERSITE": "1"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    py = str(venv / "bin" / "python")
    res = subprocess.run([py, "-c", CHECK, str(REPO)], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    shipped = len(list((REPO / "curate" / "presets" / "pipelines").rglob("*.yaml")))
    assert f"pipelines {shipped} demo seq" in res.stdout and "corruption mix-noise-33" in res.stdout, res.stdout
    cli = [py, "-m", "curate.cli"]  # (pip --target writes console scripts for the installing interpreter)
    res = subprocess.run(
        [*cli, "validate", "seq", "pipelines/whisperx.yaml"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0 and res.stdout.count("ok") == 2, res.stdout + res.stderr
    res = subprocess.run([*cli, "pretrain", "--help"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "tiny-cpu" in res.stdout, res.stdout + res.stderr
