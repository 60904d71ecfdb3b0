"""Learning-rate schedules (as functions of the step) and the thesis's batch-size heuristics (Table 11).

Heuristics, with s the batch size in seconds of audio (GPUs × accumulation × budget / 16 kHz):
h_const = m_lr;  h_sqrt = m_lr · sqrt(s / s_orig);  h_lin = m_lr · s / s_orig   (BASE: m_lr = 5e-4, s_orig = 6000 s).
The thesis found h_const diverging for batches ≤ 600 s; its batch-size study's best BASE LR at 150 s is h_sqrt's
7.91e-5 (Table 11), which configs/pretrain/base.yaml uses.
"""

from __future__ import annotations

import math

from curate.audio import SAMPLE_RATE
from curate.errors import ConfigError
from curate.w2v2.config import OptimConfig


def heuristic_lr(name: str, batch_s: float, m_lr: float = 5e-4, s_orig: float = 6000.0) -> float:
    if name == "h_const":
        return m_lr
    if name == "h_sqrt":
        return m_lr * math.sqrt(batch_s / s_orig)
    if name == "h_lin":
        return m_lr * batch_s / s_orig
    raise ConfigError(f"optim.heuristic: expected h_const, h_sqrt or h_lin, got {name!r}")


def batch_seconds(batch_samples: int, world: int, accumulation: int) -> float:
    return world * accumulation * batch_samples / SAMPLE_RATE


def peak_lr(cfg, world: int = 1) -> float:
    """The run's peak LR: ``optim.lr``, or the heuristic at the batch size in seconds of ``world`` processes."""
    oc = cfg.optim
    if oc.lr is not None:
        return oc.lr
    return heuristic_lr(
        oc.heuristic, batch_seconds(cfg.data.batch_samples, world, cfg.train.accumulation), oc.m_lr, oc.s_orig
    )


def tri_cyclic(step: int, max_lr: float, up: int, down: int, min_ratio: float) -> float:
    """Triangular cyclic: min → max over ``up`` steps, back to min over ``down``, repeat (min = max·min_ratio)."""
    lo = max_lr * min_ratio
    pos = step % (up + down)
    if pos < up:
        return lo + (max_lr - lo) * pos / up
    return max_lr - (max_lr - lo) * (pos - up) / down


def tri_stage(
    step: int, max_lr: float, total: int, ratios: list[float], init_scale: float, final_scale: float
) -> float:
    """Linear warm-up from init_scale·max, hold at max, exponential decay to final_scale·max (fairseq)."""
    warm, hold = int(total * ratios[0]), int(total * ratios[1])
    decay = max(1, total - warm - hold)
    if step < warm:
        return max_lr * (init_scale + (1 - init_scale) * step / warm)
    if step < warm + hold:
        return max_lr
    t = min(step - warm - hold, decay)
    return max_lr * math.exp(math.log(final_scale) * t / decay)


def warmup_cosine(step: int, max_lr: float, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """Linear warm-up from 0 to max over ``warmup`` steps, then half a cosine down to max·min_ratio at ``total``."""
    if step < warmup:
        return max_lr * step / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    lo = max_lr * min_ratio
    return lo + (max_lr - lo) * 0.5 * (1 + math.cos(math.pi * t))


def warmup_steps(cfg: OptimConfig, total: int) -> int:
    """Steps of the schedule's first ramp up to the peak LR (tri_cyclic: ``cycle_up``; cosine: ``warmup_steps``;
    tri_stage: its first stage; constant: 0): health checks that would stop a slow start wait for its end."""
    if cfg.schedule == "tri_cyclic":
        return cfg.cycle_up
    if cfg.schedule == "cosine":
        return cfg.warmup_steps
    if cfg.schedule == "tri_stage":
        return int(total * cfg.stage_ratios[0])
    return 0


def lr_at(step: int, cfg: OptimConfig, peak: float, total: int) -> float:
    if cfg.schedule == "tri_cyclic":
        return tri_cyclic(step, peak, cfg.cycle_up, cfg.cycle_down, cfg.min_ratio)
    if cfg.schedule == "tri_stage":
        return tri_stage(step, peak, total, cfg.stage_ratios, cfg.init_lr_scale, cfg.final_lr_scale)
    if cfg.schedule == "cosine":
        return warmup_cosine(step, peak, total, cfg.warmup_steps)
    if cfg.schedule == "constant":
        return peak
    raise ConfigError(f"optim.schedule: expected tri_cyclic, tri_stage, cosine or constant, got {cfg.schedule!r}")
