"""The demo's last act: pre-train the tiny CPU config on the demo run's best variant for a few hundred steps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def pretrain_demo(
    run_dir: str | Path,
    out_dir: str | Path,
    variant: str | None = None,
    max_steps: int = 300,
    max_time_s: float = 90.0,
    **kw: Any,
) -> dict[str, Any]:
    """``pretrain("tiny-cpu", run_dir, out_dir, variant=best)`` for at most ``max_steps`` / ``max_time_s``."""
    from curate.stats import best_variant, load_stats
    from curate.w2v2.train import pretrain

    variant = variant or best_variant(load_stats(run_dir))
    overrides = [
        f"train.max_steps={max_steps}",
        f"train.max_time_s={max_time_s}",
        "train.log_every=10",
        f"train.val_every={max(1, max_steps // 3)}",
        f"train.ckpt_every={max_steps}",
    ]
    log.info("pre-training tiny-cpu on %s:%s", run_dir, variant)
    return pretrain("tiny-cpu", run_dir, out_dir, variant=variant, overrides=overrides, **kw)
