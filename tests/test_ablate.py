"""The ablation runner end to end on tiny cells: results table, DIV for a diverging cell, resume after a kill;
and validation of every ablation/fine-tuning YAML under configs/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from curate.ablation.config import load_ablation, load_finetune_config
from curate.ablation.table import to_markdown
from curate.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "ablations").glob("*.yaml")), ids=lambda p: p.name)
def test_every_ablation_yaml_validates(path):
    spec = load_ablation(path)
    assert spec.cells and spec.eval


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "finetune").glob("*.yaml")), ids=lambda p: p.name)
def test_every_finetune_yaml_validates(path):
    assert load_finetune_config(path).steps() > 0


def _write(tmp_path: Path, spec: dict) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


BASE = {
    "name": "t",
    "data": {"run_dir": "/nonexistent"},
    "pretrain": {"config": "tiny-cpu"},
    "eval": {"test": {"kind": "librispeech", "root": "/x", "split": "test-clean"}},
    "finetune": {"config": {"max_steps": 5}, "train": {"kind": "librispeech", "root": "/x"}},
    "cells": [{"name": "a"}],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cells": [{"name": "a"}, {"name": "a"}]}, "duplicate cell"),
        ({"cells": [{"name": "a", "corruption": "mix-kazoo-10"}]}, "mix-kazoo-10"),
        ({"cells": [{"name": "a", "lr": -1}]}, "lr must be positive"),
        ({"cells": [{"name": "a", "set": ["optim.nope=1"]}]}, "nope"),
        ({"measure": ["probe"]}, "probe.train"),
        ({"finetune": {"config": {"max_steps": 5, "lr": "x"}, "train": {"kind": "librispeech", "root": "/x"}}}, "lr"),
        ({"eval": {}}, "eval"),
        ({"colour": "red"}, "unknown key"),
    ],
)
def test_bad_specs_fail_before_any_work(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_ablation(_write(tmp_path, {**BASE, **change}))


def test_markdown_layout_marks_div_and_shows_intervals():
    rows = [
        {
            "condition": "clean",
            "status": "ok",
            "seeds": 2,
            "seeds_ok": 2,
            "ssl_val_loss": 2.5,
            "ssl_val_loss_ci": 0.1,
            "ssl_val_step": 5000,
            "audio_h": 10.0,
            "crop_waste": 0.18,
            "wer_test": 12.34,
            "wer_test_ci": 1.26,
        },
        {"condition": "mix-vocal-10", "status": "DIV", "seeds": 2, "seeds_ok": 0, "ssl_val_loss": None},
    ]
    pairs = [
        {
            "a": "clean",
            "b": "x",
            "metric": "WER test",
            "diff": -1.0,
            "lo": -1.5,
            "hi": -0.5,
            "utterances": 9,
            "verdict": "B better",
        }
    ]
    md = to_markdown(rows, ["test"], pairs).splitlines()
    assert md[0] == "| condition | seeds | SSL val. loss | step | h seen | crop waste | WER test |"
    assert md[2] == "| clean | 2/2 | 2.500 ± 0.100 | 5000 | 10 | 18.0% | 12.3 ± 1.3 |"
    assert md[3] == "| mix-vocal-10 | 0/2 | DIV | DIV | DIV | DIV | DIV |"
    assert "| clean | x | WER test | -1.0000 | [-1.5000, -0.5000] | 9 | B better |" in md


# ------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory whose variant 'syn' holds 24 espeak-ng utterances of 5 words (2–3 s each)."""
    from curate import manifest
    from curate.schema import Segment
    from curate.w2v2 import asr_data

    root = tmp_path_factory.mktemp("abl")
    utts = asr_data.read_dataset({"kind": "synthetic", "root": str(root / "pre"), "n": 24, "words_per_utt": 5})
    segs = [Segment.new(u.speaker, u.audio_path, 0.0, u.duration_s, variant="syn") for u in utts]
    manifest.write_records(root / "run" / "variants" / "syn" / "part-00000.parquet", segs, "segments")
    return root


def _spec(root: Path) -> dict:
    synth = {"kind": "synthetic", "root": str(root / "ft"), "words": ["yes", "no"], "n": 12}
    return {
        "name": "tiny",
        "description": "test",
        "pretrain": {
            "config": "tiny-cpu",
            "hours": 0.01,
            "lr": 0.002,  # 12 steps of 3 s (tiny-cpu batch)
            "set": [
                "train.val_every=4",
                "train.ckpt_every=2",
                "train.log_every=2",
                "data.val_split=random",
                "data.val_fraction=0.15",
            ],
        },
        "data": {"run_dir": str(root / "run"), "variant": "syn"},
        "measure": ["finetune", "probe"],
        "finetune": {
            "config": {"max_steps": 6, "lr": 1e-3, "freeze_steps": 2, "batch_s": 4, "device": "cpu"},
            "train": synth,
        },
        "probe": {"config": {"steps": 4, "batch_s": 4, "device": "cpu"}, "train": synth},
        "eval": {"synth": {**synth, "limit": 4}},
        "cells": [
            {"name": "a"},
            {"name": "b", "condition": "second", "corruption": "2spk-mix-50"},
            {"name": "div", "lr": 1000.0, "set": ["optim.warmup_steps=0"]},  # tiny-cpu warms up over 500 steps
        ],
    }


@pytest.mark.slow
def test_runner_end_to_end_resume_after_kill_and_div(run_dir, tmp_path):
    spec, out = _write(tmp_path, _spec(run_dir)), tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "curate.cli", "ablate", str(spec), "--out", str(out), "--runner", "local"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    a_done = out / "cells" / "a" / "result.json"
    b_ckpt = out / "cells" / "b" / "seed-0" / "pretrain" / "lr-2e-03" / "last.pt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (a_done.exists() and b_ckpt.exists()):
        time.sleep(0.05)
    assert a_done.exists(), proc.stderr.read().decode() if proc.poll() is not None else "cell a never finished"
    os.killpg(proc.pid, signal.SIGKILL)  # killed in the middle of cell b's pre-training
    proc.wait()
    stamp = a_done.stat().st_mtime_ns
    assert not (out / "cells" / "b" / "result.json").exists()

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert a_done.stat().st_mtime_ns == stamp  # the finished cell was not run again
    table = pq.read_table(out / "results.parquet").to_pylist()
    rows = {r["cell"]: r for r in table}
    assert [r["cell"] for r in table] == ["a", "b", "div"]
    for name in ("a", "b"):
        r = rows[name]
        assert r["status"] == "ok" and r["ssl_val_loss"] > 0 and 1 <= r["ssl_val_step"] <= 40, r
        assert 0 <= r["wer_synth"] <= 100 and r["probe_wer_synth"] is not None and r["audio_h"] > 0
    assert rows["b"]["condition"] == "second" and rows["b"]["corruption"] == "2spk-mix-50"
    assert rows["div"]["status"] == "DIV" and "diverged" in rows["div"]["error"]
    md = (out / "results.md").read_text()
    assert "| div | 0/1 | DIV | DIV | DIV | DIV | DIV | DIV |" in md and "| second |" in md
    # The resumed pre-training of b continued from its checkpoint rather than starting over.
    metrics = (out / "cells" / "b" / "seed-0" / "pretrain" / "lr-2e-03" / "metrics.jsonl").read_text().splitlines()
    recs = [yaml.safe_load(x) for x in metrics]
    steps = [int(r["step"]) for r in recs]
    assert steps == sorted(set(steps)) and recs[-1]["audio_h"] >= 0.01  # the budget: hours seen


# ------------------------------------------------------------------------------------------- notebook

NOTEBOOK = REPO / "notebooks" / "ablation-results.ipynb"


def _fake_results(tmp_path: Path) -> Path:
    """A results directory as the runner leaves it: spec, per-cell result.json (one DIV), the table."""
    import json

    from curate.ablation.table import write_results
    from curate.testing.ablation import EXAMPLE_RESULTS

    spec = {**BASE, "cells": [{"name": "clean"}, {"name": "mix-vocal-10", "corruption": "mix-vocal-10"}]}
    out = tmp_path / "out"
    for name, res in EXAMPLE_RESULTS.items():
        (out / "cells" / name).mkdir(parents=True)
        (out / "cells" / name / "result.json").write_text(json.dumps({"cell": name, **res}))
    write_results(load_ablation(_write(tmp_path, spec)), out)
    return out


def test_results_table_parquet_schema(tmp_path):
    out = _fake_results(tmp_path)
    t = pq.read_table(out / "results.parquet")
    assert t.schema.field("ssl_val_step").type == "int64" and t.schema.field("wer_test").type == "double"
    assert t.schema.metadata[b"curate.results_version"] == b"2"
    assert t.column("status").to_pylist() == ["ok", "DIV"]


def test_notebook_is_stored_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    imports = [line.split()[1] for c in code for line in c.source.splitlines() if line.startswith(("import ", "from "))]
    assert all(m.split(".")[0] in {"os", "tempfile", "pathlib", "matplotlib", "IPython", "curate"} for m in imports), (
        imports
    )


@pytest.mark.slow
def test_notebook_executes_on_a_tiny_results_dir(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    out = _fake_results(tmp_path)
    monkeypatch.setenv("CURATE_ABLATION_DIR", str(out))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(
        str(o.get("text", ""))
        + str(o.get("data", {}).get("text/plain", ""))
        + str(o.get("data", {}).get("text/markdown", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "| clean | 1/1 | 2.410 | 4000 | 10 | 18.0% | 17.5 |" in text and "mix-vocal-10: DIV" in text
    assert "1 validation-loss curves" in text
    assert sum(bool(o.get("data", {}).get("image/png")) for c in nb.cells for o in c.get("outputs", [])) == 2
