"""Training health, each failure by name, with its cause and the thesis's remedy.

Checked every step (training statistics):
- ``divergence``: loss or grad norm NaN/inf (always stops), or the loss above ``spike_factor`` × its running
  median for ``spike_patience`` steps (blow-up).
Checked at every validation after ``collapse_after`` steps (held-out statistics of ``curate.w2v2.validate``):
- ``quantizer_collapse``: the codes no longer depend on the input: mean per-frame code entropy ≈ ln V
  (``1 − H/ln V < min_code_dependence``) or a codebook's held-out code perplexity < ``min_perplexity``.
- ``diversity_collapse``: the diversity term is at its optimum (training soft perplexity ≥ 97 % of V in every
  codebook) while the held-out contrastive loss has not improved for ``chance_patience`` validations: the
  diversity penalty outweighs the contrastive task (the thesis's LARGE λ_d = 0.1 signature under summed loss).
- ``contrastive_at_chance``: held-out contrastive loss within ``chance_margin`` of its chance level (computed
  on the actual distractor sets) for ``chance_patience`` validations in a row.
Each check stops training (``TrainingHealthError``, its ``name`` the check) or warns (logged, kept in
``Health.findings`` and metrics.jsonl), per ``train.on_health``.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field

from curate.errors import CurateError
from curate.w2v2.config import HEALTH_DEFAULTS

log = logging.getLogger(__name__)


class TrainingHealthError(CurateError, RuntimeError):
    """Training diverged, collapsed or stalled; ``name`` is the check, the message says why and what to try."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


@dataclass
class Remedy:
    """What the remedies need to be concrete: the run's LR and batch, the thesis's h_sqrt rung for it."""

    peak_lr: float = 5e-4
    batch_s: float = 150.0  # seconds of audio per optimizer step (all GPUs, accumulation)
    h_sqrt_lr: float = 7.9e-5  # m_lr · sqrt(batch_s / s_orig)
    loss_reduction: str = "per_token"
    diversity_weight: float = 0.1
    codes: int = 640  # G · V

    def lower_lr(self) -> str:
        target = self.h_sqrt_lr if self.h_sqrt_lr < 0.9 * self.peak_lr else self.peak_lr / 2
        return (
            f"lower the LR on the thesis's h_sqrt ladder: optim.lr={target:.2e} (now {self.peak_lr:.2e}; "
            f"h_sqrt at {self.batch_s:.0f} s batches = {self.h_sqrt_lr:.2e}), with warm-up"
        )

    def scale_diversity(self, masked_per_batch: float) -> str:
        if self.loss_reduction == "sum":
            scaled = self.diversity_weight * self.codes / max(1.0, masked_per_batch)
            return (
                f"with loss_reduction=sum the diversity term weighs N/(G·V) ≈ {masked_per_batch / self.codes:.1f}× "
                f"the thesis's: use model.loss_reduction=per_token, or scale λ_d to the GPU batch: "
                f"model.diversity_weight≈{scaled:.2g}"
            )
        return f"lower model.diversity_weight (now {self.diversity_weight}) or {self.lower_lr()}"


@dataclass
class Health:
    spike_factor: float = 3.0
    spike_patience: int = 50
    collapse_after: int = 5000
    chance_margin: float = 0.02
    chance_patience: int = 3
    min_code_dependence: float = 0.01
    min_perplexity: float = 2.0
    codebook_entries: int = 320
    actions: dict[str, str] = field(default_factory=dict)
    remedy: Remedy = field(default_factory=Remedy)
    history: deque = field(default_factory=lambda: deque(maxlen=200))
    spikes: int = 0
    ppl_sum: list[float] = field(default_factory=list)  # training soft perplexity since the last validation
    ppl_n: int = 0
    masked_sum: float = 0.0  # masked steps per optimizer step, same window
    gaps: list[float] = field(default_factory=list)  # 1 − held-out contrastive / chance, per validation
    at_chance: int = 0
    dependence_low: int = 0
    findings: list[dict] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg, remedy: Remedy) -> Health:
        tc = cfg.train
        return cls(
            tc.spike_factor,
            tc.spike_patience,
            tc.collapse_after,
            tc.chance_margin,
            tc.chance_patience,
            tc.min_code_dependence,
            tc.min_perplexity,
            cfg.model.codebook_entries,
            dict(tc.on_health),
            remedy,
        )

    def _fire(self, name: str, step: int, message: str, force_stop: bool = False) -> None:
        action = "stop" if force_stop else {**HEALTH_DEFAULTS, **self.actions}[name]
        text = f"{name} at step {step}: {message}"
        self.findings.append({"name": name, "step": step, "action": action, "message": text})
        if action == "stop":
            raise TrainingHealthError(name, text)
        log.warning("%s (train.on_health.%s=warn: continuing)", text, name)

    def check(
        self, step: int, loss: float, contrastive: float, grad_norm: float, ppl: list[float], masked: float = 0.0
    ) -> None:
        """Every step: divergence; accumulates the window the validation checks read."""
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            self._fire(
                "divergence",
                step,
                f"training diverged: loss={loss} grad_norm={grad_norm} is not finite; likely cause: the LR is "
                f"too high for the batch size; {self.remedy.lower_lr()}, or set optim.clip_norm",
                force_stop=True,
            )
        if len(self.history) >= 20:
            med = sorted(self.history)[len(self.history) // 2]
            self.spikes = self.spikes + 1 if loss > self.spike_factor * med else 0
            if self.spikes >= self.spike_patience:
                n, self.spikes = self.spikes, 0
                self._fire(
                    "divergence",
                    step,
                    f"training diverged: loss {loss:.3f} stayed above {self.spike_factor}× its running median "
                    f"{med:.3f} for {n} steps (blow-up); {self.remedy.lower_lr()}, or set optim.clip_norm",
                )
        self.history.append(loss)
        self.ppl_sum = [a + b for a, b in zip(self.ppl_sum, ppl, strict=True)] if self.ppl_sum else list(ppl)
        self.ppl_n += 1
        self.masked_sum += masked

    def check_validation(self, step: int, val: dict) -> list[str]:
        """At a validation (``val``: the ``val_*`` record of ``curate.w2v2.validate.validate``): the collapse and
        stall checks. Returns the names that fired as warnings; raises for those set to stop."""
        n0 = len(self.findings)
        train_ppl = [p / max(1, self.ppl_n) for p in self.ppl_sum]
        masked = self.masked_sum / max(1, self.ppl_n)
        self.ppl_sum, self.ppl_n, self.masked_sum = [], 0, 0.0
        chance = val["val_contrastive_chance"]
        gap = 1.0 - val["val_contrastive"] / chance if chance > 0 else 0.0
        self.gaps.append(gap)
        P = self.chance_patience  # improved: best of the last P beats the best before
        improved = len(self.gaps) <= P or max(self.gaps[-P:]) >= max(self.gaps[:-P]) + self.chance_margin
        if step < self.collapse_after:
            return []
        G = sum(1 for k in val if k.startswith("val_code_dependence_"))
        dep = [val[f"val_code_dependence_{g}"] for g in range(G)]
        code_ppl = [val[f"val_code_perplexity_{g}"] for g in range(G)]
        low = [g for g in range(G) if dep[g] < self.min_code_dependence or code_ppl[g] < self.min_perplexity]
        self.dependence_low = self.dependence_low + 1 if low else 0
        self.at_chance = self.at_chance + 1 if gap < self.chance_margin else 0
        if low and self.dependence_low >= min(2, self.chance_patience):
            g = low[0]
            self._fire(
                "quantizer_collapse",
                step,
                (
                    f"codebook {g} ignores its input: mean per-frame code entropy is {1 - dep[g]:.1%} of ln V "
                    f"(input-dependence {dep[g]:.4f} < {self.min_code_dependence}), held-out code perplexity "
                    f"{code_ppl[g]:.1f} of {self.codebook_entries}; the targets are noise, so the contrastive loss sits at "
                    f"chance ({val['val_contrastive']:.3f} vs {chance:.3f}). Likely cause: the LR is too high for the batch "
                    f"size (the diversity term flattens the code logits before the context network learns); "
                    f"{self.remedy.lower_lr()}"
                ),
            )
        elif train_ppl and min(train_ppl) >= 0.97 * self.codebook_entries and not improved and len(self.gaps) > P:
            self._fire(
                "diversity_collapse",
                step,
                (
                    f"the codebooks are spread to their maximum (training soft perplexity {min(train_ppl):.1f} of "
                    f"{self.codebook_entries}) but the held-out contrastive loss did not improve by {self.chance_margin:.0%} "
                    f"of chance in {self.chance_patience} validations ({val['val_contrastive']:.3f}, chance {chance:.3f}): "
                    f"the diversity penalty outweighs the task (thesis: LARGE with λ_d = 0.1); "
                    f"{self.remedy.scale_diversity(masked)}"
                ),
            )
        elif self.at_chance >= self.chance_patience:
            self._fire(
                "contrastive_at_chance",
                step,
                (
                    f"held-out contrastive loss {val['val_contrastive']:.3f} is within {self.chance_margin:.0%} of its chance "
                    f"level {chance:.3f} (ln(K_eff + 1) on the actual distractors) for {self.at_chance} validations: the "
                    f"model cannot tell targets from distractors; {self.remedy.lower_lr()}; on very little data "
                    f"(minutes) expect memorisation rather than learning"
                ),
            )
        return [f["name"] for f in self.findings[n0:]]

    def state(self) -> dict:
        return {
            "history": list(self.history),
            "spikes": self.spikes,
            "ppl_sum": self.ppl_sum,
            "ppl_n": self.ppl_n,
            "masked_sum": self.masked_sum,
            "gaps": self.gaps,
            "at_chance": self.at_chance,
            "dependence_low": self.dependence_low,
            "findings": self.findings,
        }

    def load_state(self, s: dict) -> None:
        self.history.clear()
        self.history.extend(s["history"])
        for k in ("spikes", "ppl_sum", "ppl_n", "masked_sum", "gaps", "at_chance", "dependence_low", "findings"):
            if k in s:
                setattr(self, k, s[k])
