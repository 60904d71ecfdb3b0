"""The Table-13 template, pointed at a small LibriSpeech-shaped run directory (every utterance its own
recording) with a tiny model and budget, finishes every cell: one shared validation set (whole speakers),
a budget of audio hours seen, the h_sqrt LR, and an empty validation set refused before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from curate.ablation.config import load_ablation
from curate.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def libri(tmp_path_factory):
    from curate.corrupt import librispeech_run_dir
    from curate.testing.ablation import make_corruption_sources, make_librispeech_tree

    root = tmp_path_factory.mktemp("t13")
    tree = make_librispeech_tree(root / "LibriSpeech", speakers=4, chapters=2, per_chapter=3)
    run = librispeech_run_dir(tree, root / "run", variant="train-960", threads=1)
    return root, run, make_corruption_sources(root / "sources")


def _pointed(root: Path, run: Path, sources: dict, cells: list | None = None) -> Path:
    spec = yaml.safe_load((REPO / "configs" / "ablations" / "table13.yaml").read_text())
    assert "lr" not in spec["pretrain"]  # no pinned LR: h_sqrt of the config
    synth = {"kind": "synthetic", "root": str(root / "ft"), "words": ["yes", "no"], "n": 6}
    spec.update(
        pretrain={
            "config": "tiny-cpu",
            "hours": 0.004,  # ≈ 14 s seen: a handful of tiny-cpu steps
            "seeds": [0],
            "set": ["train.val_every=3", "train.ckpt_every=3", "train.log_every=1", "train.tensorboard=false"],
        },
        data={"run_dir": str(run), "variant": "train-960"},
        measure=["probe"],
        probe={"config": {"steps": 2, "batch_s": 4, "device": "cpu"}, "train": synth},
        eval={"synth": {**synth, "limit": 2}},
    )
    for c in spec["cells"]:
        if isinstance(c.get("corruption"), dict):
            c["corruption"]["sources"] = sources
    if cells is not None:
        spec["cells"] = cells
    path = root / f"table13-{len(spec['cells'])}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_table13_template_finishes_every_cell_on_a_librispeech_shaped_run(libri, tmp_path):
    from curate.ablation.runner import run_ablation

    root, run, sources = libri
    spec_path = _pointed(root, run, sources)
    rows = run_ablation(spec_path, tmp_path / "out", runner="local", threads=1)
    assert len(rows) == 24
    bad = {r["cell"]: r["error"] for r in rows if r["status"] != "ok"}
    assert not bad, bad
    vs = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert vs["rule"] == "speaker" and vs["segments"]  # whole speakers held out
    held = {s["segment_id"] for s in vs["segments"]}
    for r in rows:
        assert r["validation"]["rule"] == "speaker" and r["validation"]["utterances"] == len(held)
        s = r["seeds"][0]
        assert s["val_split"] == "speaker" and s["ssl_val_loss"] > 0
        assert s["audio_h"] >= 0.004 and s["read_h"] >= s["audio_h"] and 0 <= s["crop_waste"] < 1
        assert s["lr"] is None  # the config's heuristic, not a pinned value
    md = (tmp_path / "out" / "results.md").read_text()
    assert "cells finished 24/24" in md and "Paired differences" in md


def test_an_empty_shared_validation_set_is_refused_before_any_training(libri, tmp_path):
    from curate.ablation.runner import run_ablation

    root, run, sources = libri
    spec = yaml.safe_load(_pointed(root, run, sources, cells=[{"name": "baseline"}]).read_text())
    spec["validation"] = {"rule": "speaker", "fraction": 0.5}
    spec["data"]["variant"] = "one"
    (run / "variants" / "one").mkdir(exist_ok=True)
    one = sorted((run / "variants" / "train-960").glob("part-*.parquet"))[0]
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(one).slice(0, 1), run / "variants" / "one" / one.name)
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="validation set would be empty"):
        run_ablation(path, tmp_path / "out", runner="local")
    assert not (tmp_path / "out" / "cells").exists()  # nothing trained


def test_template_validation_keys_are_checked(tmp_path):
    spec = yaml.safe_load((REPO / "configs" / "ablations" / "table13.yaml").read_text())
    spec["validation"] = {"rule": "by-colour"}
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="validation"):
        load_ablation(p)
