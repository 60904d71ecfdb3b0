"""An example ablation results directory, as ``curate ablate`` leaves it (spec, per-cell ``result.json`` with one
diverged cell, ``results.parquet``/``results.md``), for the results notebook and its tests: it shows the
notebook's layout in a second, without the ≈ 15 minutes of ``make demo && make demo-ablate``."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLE_SPEC = {
    "name": "example",
    "data": {"run_dir": "/nonexistent"},
    "pretrain": {"config": "tiny-cpu"},
    "eval": {"test": {"kind": "librispeech", "root": "/x", "split": "test-clean"}},
    "finetune": {"config": {"max_steps": 5}, "train": {"kind": "librispeech", "root": "/x"}},
    "cells": [{"name": "clean"}, {"name": "mix-vocal-10", "corruption": "mix-vocal-10"}],
}
EXAMPLE_RESULTS = {
    "clean": {
        "status": "ok",
        "ssl_val_loss": 2.41,
        "ssl_val_step": 4000,
        "lr": 5e-4,
        "wer": {"test": 17.5},
        "val_curves": {"0.0005": [[2000, 2.9], [4000, 2.41]]},
    },
    "mix-vocal-10": {"status": "DIV", "error": "diverged", "val_curves": {}},
}


def make_example_ablation(root: str | Path) -> Path:
    """``root/out``: the example results directory (see the module docstring); returns it."""
    import yaml

    from curate.ablation.config import load_ablation
    from curate.ablation.table import write_results

    root = Path(root)
    out = root / "out"
    for name, res in EXAMPLE_RESULTS.items():
        (out / "cells" / name).mkdir(parents=True, exist_ok=True)
        (out / "cells" / name / "result.json").write_text(json.dumps({"cell": name, **res}))
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(EXAMPLE_SPEC))
    write_results(load_ablation(spec), out)
    return out


__all__ = ["EXAMPLE_RESULTS", "EXAMPLE_SPEC", "make_example_ablation"]
