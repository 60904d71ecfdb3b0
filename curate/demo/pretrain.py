"""The demo's last act: pre-train the tiny CPU config until it learns, and save the learning curve as a PNG.

Data: ``curate demo`` pre-trains on the demo run's best clean variant (``real_speech=False``; espeak-ng speech in
the synthetic archive); with ``real_speech`` (``curate demo --pretrain-real-speech``), the real speech of the
real-audio folder when present (``curate.testing.speech.realaudio_dir``: 6 min, 20+ speakers, held out by speaker).
On that real speech 1,500 steps of ``tiny-cpu`` (≈ 1–2 min on one idle core) take the held-out contrastive loss
below its chance level; the curve
(``learning_curve.png``) shows the training and held-out loss against chance, and the held-out accuracy
against chance and the shuffled-context control.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def demo_data(run_dir: str | Path, out_dir: str | Path, variant: str | None = None) -> tuple[Path, str, str]:
    """(run directory, variant, description): real speech when the real-audio folder is there, else the demo
    run's ``variant`` (default: its best)."""
    from curate.testing.speech import real_speech_run, realaudio_dir

    real = real_speech_run(realaudio_dir(), Path(out_dir) / "real-speech-run", "speech")
    if real is not None:
        return real, "speech", f"real speech from {realaudio_dir()}"
    from curate.stats import best_variant, load_stats

    variant = variant or best_variant(load_stats(run_dir))
    return Path(run_dir), variant, f"{run_dir}:{variant} (generated speech)"


def pretrain_demo(
    run_dir: str | Path,
    out_dir: str | Path,
    variant: str | None = None,
    max_steps: int = 1500,
    max_time_s: float = 300.0,
    real_speech: bool = True,
    **kw: Any,
) -> dict[str, Any]:
    """``pretrain("tiny-cpu")`` for ``max_steps`` (``max_time_s`` guards a very busy machine) on
    :func:`demo_data` (``real_speech=False``: the demo run's variant only); the summary gains ``data`` and
    ``curve_png``."""
    from curate.w2v2.train import pretrain

    out_dir = Path(out_dir)
    if real_speech:
        data, variant, what = demo_data(run_dir, out_dir.parent / "pretrain-data", variant)
    else:
        from curate.stats import best_variant, load_stats

        data, variant = Path(run_dir), variant or best_variant(load_stats(run_dir))
        what = f"{run_dir}:{variant}"
    overrides = [
        f"train.max_steps={max_steps}",
        f"train.max_time_s={max_time_s}",
        "train.log_every=10",
        f"train.val_every={max(1, max_steps // 6)}",
        f"train.ckpt_every={max_steps}",
        "data.val_split=speaker",
        "data.val_fraction=0.1",
    ]
    log.info("pre-training tiny-cpu on %s", what)
    result = pretrain("tiny-cpu", data, out_dir, variant=variant, overrides=overrides, **kw)
    result["data"] = what
    result["curve_png"] = str(plot_learning_curve(out_dir))
    return result


def plot_learning_curve(run_dir: str | Path, png: str | Path | None = None) -> Path:
    """``metrics.jsonl`` of a pre-training run → a PNG: contrastive loss / its chance level (training, smoothed;
    held-out) and held-out accuracy beside its chance level and the shuffled-context control."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    run_dir = Path(run_dir)
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    png = Path(png) if png else run_dir / "learning_curve.png"
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    tr = [(r["step"], r["contrastive"] / r["contrastive_chance"]) for r in recs if r.get("contrastive_chance")]
    if tr:
        s, v = np.array(tr).T
        k = max(1, len(v) // 30)
        a.plot(s, v, color="0.8", lw=0.8, label="training")
        a.plot(s[k - 1 :], np.convolve(v, np.ones(k) / k, "valid"), color="C0", label="training (smoothed)")
    val = [r for r in recs if "val_contrastive" in r and r.get("val_contrastive_chance")]
    if val:
        vs = [r["step"] for r in val]
        a.plot(
            vs, [r["val_contrastive"] / r["val_contrastive_chance"] for r in val], "o-", color="C1", label="held-out"
        )
        b.plot(vs, [r["val_accuracy"] for r in val], "o-", color="C1", label="held-out accuracy")
        if "val_accuracy_shuffled" in val[0]:
            b.plot(vs, [r["val_accuracy_shuffled"] for r in val], "s--", color="C2", label="shuffled-context control")
        b.plot(vs, [r["val_accuracy_chance"] for r in val], ":", color="k", label="chance")
    a.axhline(1.0, color="k", ls=":", label="chance")
    a.set(xlabel="step", ylabel="contrastive loss / chance", title="contrastive loss against chance")
    b.set(xlabel="step", ylabel="accuracy", title="held-out accuracy")
    for ax in (a, b):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
