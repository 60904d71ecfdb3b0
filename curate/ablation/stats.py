"""The statistics of an ablation table: a mean with its 95 % interval over seeds, and the paired difference of
two variants with a bootstrap interval over test utterances.

- ``mean_ci``: Student-t interval of the mean of the per-seed values (one seed: no interval).
- ``paired_bootstrap``: both variants scored on the same utterances; a corpus metric is Σ numerator / Σ
  denominator (word errors / reference words for WER, contrastive loss sum / masked steps for the held-out loss).
  The utterances are resampled with replacement (the same draw for both variants, which is what pairs them);
  the interval is the percentile interval of B − A. Lower is better for every metric here, so B is "better"
  only when the whole interval lies below 0, "worse" only when it lies above, and otherwise "no difference".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LEVEL = 0.95


def mean_ci(values: Sequence[float], level: float = LEVEL) -> tuple[float, float | None]:
    """(mean, half-width of the ``level`` t-interval) of ``values``; half-width None for fewer than 2 values;
    NaN mean for none."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, None
    if x.size == 1:
        return float(x[0]), None
    from scipy import stats

    t = float(stats.t.ppf(0.5 + level / 2, x.size - 1))
    return float(x.mean()), t * float(x.std(ddof=1)) / math.sqrt(x.size)


def paired_bootstrap(
    num_a: Sequence[float],
    num_b: Sequence[float],
    den: Sequence[float],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = LEVEL,
    scale: float = 1.0,
) -> dict:
    """Paired difference ``metric(B) − metric(A)`` (metric = ``scale`` · Σ num / Σ den over utterances) with its
    percentile bootstrap interval over utterances; ``verdict``: ``B better`` / ``B worse`` when the interval
    excludes 0 (lower is better), else ``no difference``."""
    a, b, d = (np.asarray(v, dtype=float) for v in (num_a, num_b, den))
    if not (a.shape == b.shape == d.shape) or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_bootstrap: need equal non-empty 1-D arrays, got {a.shape}, {b.shape}, {d.shape}")
    diff = scale * (b.sum() - a.sum()) / d.sum()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    den_s = d[idx].sum(1)
    ok = den_s > 0
    boot = scale * (b[idx].sum(1) - a[idx].sum(1))[ok] / den_s[ok]
    lo, hi = (float(q) for q in np.quantile(boot, [(1 - level) / 2, (1 + level) / 2]))
    verdict = "B better" if hi < 0 else "B worse" if lo > 0 else "no difference"
    return {"diff": float(diff), "lo": lo, "hi": hi, "utterances": int(a.size), "verdict": verdict}


def fmt_ci(mean: float | None, half: float | None, digits: int = 3) -> str:
    """``mean ± half`` (or the mean alone, or empty)."""
    if mean is None or not math.isfinite(mean):
        return ""
    return f"{mean:.{digits}f}" + ("" if half is None else f" ± {half:.{digits}f}")


__all__ = ["LEVEL", "fmt_ci", "mean_ci", "paired_bootstrap"]
