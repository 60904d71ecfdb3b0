"""Training health, each failure by name, with its cause and the thesis's remedy, aware of the LR warm-up.

Checked every step: ``divergence`` when the loss or grad norm is NaN/inf (always stops, at any step).
Checked on the training statistics already logged, per window of ``health_window`` steps from step
``health_from`` on (the first hundreds of steps, long before any validation):
- ``quantizer_collapse``: a codebook's codes no longer depend on the input — mean per-step code entropy ≈ ln V
  (input dependence ``1 − H̄/ln V < min_code_dependence``; healthy tiny runs stay above 0.4) for two windows
  in a row. Stops at any step: a collapsed quantizer gives noise targets and does not recover.
- ``contrastive_at_chance``: training contrastive loss within ``chance_margin`` of its chance level (on the
  actual distractors) for ``chance_patience`` windows in a row.
- ``divergence`` (loss climbing back towards chance): the windowed loss had come ≥ 2·``chance_margin`` below
  chance and has since lost more than half of that progress, for ``chance_patience`` windows in a row; or the
  loss above ``spike_factor`` × its running median for ``spike_patience`` steps (blow-up).
The last two stop only after the warm-up (``warmup`` steps: the schedule's ramp; and not before
``collapse_after``); before, they are recorded once as a warning (a slow healthy start is not a divergence).
Checked at every validation after ``collapse_after`` steps (held-out statistics of ``curate.w2v2.validate``):
the held-out ``quantizer_collapse``; ``diversity_collapse`` (training soft perplexity ≥ 97 % of V in every
codebook while the held-out contrastive loss has not improved for ``chance_patience`` validations) and the
held-out ``contrastive_at_chance``, those two only after the warm-up.
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
    min_code_dependence: float = 0.05
    min_perplexity: float = 2.0
    codebook_entries: int = 320
    warmup: int = 0  # steps of the LR ramp: at-chance / divergence-by-regression stop only after it
    window: int = 50  # training-statistics window (steps)
    health_from: int = 100  # the training-statistics checks start here
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
    win: dict = field(default_factory=dict)  # sums of the current training window
    best_gap: float = 0.0  # best windowed training gap below chance so far
    low_windows: int = 0  # windows in a row with a collapsed codebook
    chance_windows: int = 0  # windows in a row at chance
    regress_windows: int = 0  # windows in a row that lost half the progress below chance
    warned: list[str] = field(default_factory=list)  # warm-up warnings already given (once each)

    @classmethod
    def from_config(cls, cfg, remedy: Remedy, warmup: int = 0) -> Health:
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
            warmup,
            tc.health_window,
            tc.health_from,
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

    def _after_warmup(self, name: str, step: int, message: str) -> None:
        """Fire after the warm-up (and not before ``collapse_after``); before, warn once (recorded) and go on."""
        if step > max(self.warmup, self.collapse_after):
            self._fire(name, step, message)
        elif name not in self.warned:
            self.warned.append(name)
            until = max(self.warmup, self.collapse_after)
            text = f"{name} at step {step} (warm-up: no stop before step {until}): {message}"
            self.findings.append({"name": name, "step": step, "action": "warn", "message": text})
            log.warning(text)

    def check(
        self,
        step: int,
        loss: float,
        contrastive: float,
        grad_norm: float,
        ppl: list[float],
        masked: float = 0.0,
        chance: float | None = None,
        code_ppl: list[float] | None = None,
        dependence: list[float] | None = None,
    ) -> None:
        """Every step: NaN divergence, the blow-up rule; accumulates the training windows (``chance``: the
        step's contrastive chance level, ``code_ppl`` / ``dependence`` per codebook) and the validation window."""
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
                self._after_warmup(
                    "divergence",
                    step,
                    f"training diverged: loss {loss:.3f} stayed above {self.spike_factor}× its running median "
                    f"{med:.3f} for {n} steps (blow-up); {self.remedy.lower_lr()}, or set optim.clip_norm",
                )
        self.history.append(loss)
        self.ppl_sum = [a + b for a, b in zip(self.ppl_sum, ppl, strict=True)] if self.ppl_sum else list(ppl)
        self.ppl_n += 1
        self.masked_sum += masked
        if chance is not None and code_ppl is not None and dependence is not None:
            w = self.win
            w["n"] = w.get("n", 0) + 1
            w["c"], w["chance"] = w.get("c", 0.0) + contrastive, w.get("chance", 0.0) + chance
            w["ppl"] = [a + b for a, b in zip(w.get("ppl", [0.0] * len(code_ppl)), code_ppl, strict=True)]
            w["dep"] = [a + b for a, b in zip(w.get("dep", [0.0] * len(dependence)), dependence, strict=True)]
            if w["n"] >= self.window:
                self.win = {}
                if step >= self.health_from:
                    self._check_window(step, w)

    def _check_window(self, step: int, w: dict) -> None:
        """The training-statistics checks on one finished window (means over its steps)."""
        n = w["n"]
        c, chance = w["c"] / n, w["chance"] / n
        dep, cppl = [d / n for d in w["dep"]], [p / n for p in w["ppl"]]
        # input dependence only: one batch's hard code perplexity is small in healthy runs too (few masked steps)
        low = [g for g in range(len(dep)) if dep[g] < self.min_code_dependence]
        self.low_windows = self.low_windows + 1 if low else 0
        if self.low_windows >= 2:
            g, self.low_windows = low[0], 0  # (a warning is given once per episode)
            self._fire(
                "quantizer_collapse",
                step,
                f"codebook {g} ignores its input over the last {2 * self.window} training steps: input dependence "
                f"{dep[g]:.4f} (1 − mean code entropy / ln V; < {self.min_code_dependence}), code perplexity "
                f"{cppl[g]:.1f} of {self.codebook_entries}; the targets are noise. Likely cause: the LR is too high "
                f"for the batch size (the diversity term flattens the code logits); {self.remedy.lower_lr()}",
            )
        gap = 1.0 - c / chance if chance > 0 else 0.0
        self.best_gap = max(self.best_gap, gap)
        self.chance_windows = self.chance_windows + 1 if gap < self.chance_margin else 0
        if self.chance_windows >= self.chance_patience:
            self.chance_windows = 0
            self._after_warmup(
                "contrastive_at_chance",
                step,
                f"training contrastive loss {c:.3f} within {self.chance_margin:.0%} of its chance level {chance:.3f} "
                f"for {self.chance_patience * self.window} steps: the model cannot tell targets from distractors; "
                f"{self.remedy.lower_lr()}",
            )
        lost = self.best_gap >= 2 * self.chance_margin and gap < self.best_gap / 2
        self.regress_windows = self.regress_windows + 1 if lost else 0
        if self.regress_windows >= self.chance_patience:
            self.regress_windows = 0
            self._after_warmup(
                "divergence",
                step,
                f"training diverged: the contrastive loss climbed back towards chance ({gap:.1%} below its chance "
                f"level {chance:.3f}, after {self.best_gap:.1%} below) for {self.chance_patience * self.window} "
                f"steps; {self.remedy.lower_lr()}, or set optim.clip_norm",
            )

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
        after_warmup = step > self.warmup  # validations at chance count from the end of the warm-up
        G = sum(1 for k in val if k.startswith("val_code_dependence_"))
        dep = [val[f"val_code_dependence_{g}"] for g in range(G)]
        code_ppl = [val[f"val_code_perplexity_{g}"] for g in range(G)]
        low = [g for g in range(G) if dep[g] < self.min_code_dependence or code_ppl[g] < self.min_perplexity]
        self.dependence_low = self.dependence_low + 1 if low else 0
        self.at_chance = self.at_chance + 1 if gap < self.chance_margin and after_warmup else 0
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
        elif (
            after_warmup
            and train_ppl
            and min(train_ppl) >= 0.97 * self.codebook_entries
            and not improved
            and len(self.gaps) > P
        ):
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
        elif after_warmup and self.at_chance >= self.chance_patience:
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
            "win": self.win,
            "best_gap": self.best_gap,
            "low_windows": self.low_windows,
            "chance_windows": self.chance_windows,
            "regress_windows": self.regress_windows,
            "warned": self.warned,
        }

    def load_state(self, s: dict) -> None:
        self.history.clear()
        self.history.extend(s["history"])
        keys = ("spikes", "ppl_sum", "ppl_n", "masked_sum", "gaps", "at_chance", "dependence_low", "findings", "win")
        for k in (*keys, "best_gap", "low_windows", "chance_windows", "regress_windows", "warned"):
            if k in s:
                setattr(self, k, s[k])
