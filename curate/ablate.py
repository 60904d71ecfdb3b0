"""Public entry points of the ablation tooling (the implementation lives in :mod:`curate.ablation`)."""

from curate.ablation.config import load_ablation, load_any_config, load_finetune_config
from curate.ablation.runner import run_ablation
from curate.ablation.table import read_results, val_curves, write_results

__all__ = [
    "load_ablation",
    "load_any_config",
    "load_finetune_config",
    "read_results",
    "run_ablation",
    "val_curves",
    "write_results",
]
