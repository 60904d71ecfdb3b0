"""Training health: divergence (NaN/inf, persistent loss spikes) and collapse (contrastive loss flat at
ln 101, codebook perplexity collapse). A failed check stops training with a message naming the likely cause."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from curate.w2v2.loss import COLLAPSE_LOSS


class TrainingHealthError(RuntimeError):
    """Training diverged or collapsed; the message says why and what to try."""


@dataclass
class Health:
    spike_factor: float = 3.0
    spike_patience: int = 50
    collapse_after: int = 5000
    collapse_window: int = 1000
    min_perplexity: float = 2.0
    lr_hint: str = ""
    history: deque = field(default_factory=lambda: deque(maxlen=200))
    spikes: int = 0
    flat: int = 0
    low_ppl: int = 0

    def check(self, step: int, loss: float, contrastive: float, grad_norm: float, ppl: list[float]) -> None:
        hint = f"likely cause: the learning rate is too high for the batch size ({self.lr_hint}); lower optim.lr or use optim.heuristic=h_sqrt"
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise TrainingHealthError(
                f"step {step}: loss={loss} grad_norm={grad_norm} is not finite (diverged); {hint}"
            )
        if len(self.history) >= 20:
            med = sorted(self.history)[len(self.history) // 2]
            self.spikes = self.spikes + 1 if loss > self.spike_factor * med else 0
            if self.spikes >= self.spike_patience:
                raise TrainingHealthError(
                    f"step {step}: loss {loss:.3f} stayed above {self.spike_factor}× its running "
                    f"median {med:.3f} for {self.spikes} steps (diverging); {hint}"
                )
        self.history.append(loss)
        if step < self.collapse_after:
            return
        self.flat = self.flat + 1 if abs(contrastive - COLLAPSE_LOSS) < 0.02 else 0
        self.low_ppl = self.low_ppl + 1 if min(ppl) < self.min_perplexity else 0
        if self.flat >= self.collapse_window:
            raise TrainingHealthError(
                f"step {step}: contrastive loss flat at ln 101 = {COLLAPSE_LOSS:.3f} for "
                f"{self.flat} steps: the model cannot tell targets from distractors (collapse); {hint}"
            )
        if self.low_ppl >= self.collapse_window:
            raise TrainingHealthError(
                f"step {step}: codebook perplexity {min(ppl):.2f} < {self.min_perplexity} for "
                f"{self.low_ppl} steps (codebook collapse); {hint}, or raise model.diversity_weight"
            )

    def state(self) -> dict:
        return {"history": list(self.history), "spikes": self.spikes, "flat": self.flat, "low_ppl": self.low_ppl}

    def load_state(self, s: dict) -> None:
        self.history.clear()
        self.history.extend(s["history"])
        self.spikes, self.flat, self.low_ppl = s["spikes"], s["flat"], s["low_ppl"]
