"""Thesis batching: length-sorted bins of 5,000 → random draws into a priority queue of 300 → batches filled up
to a sample budget; batches whose shortest and longest utterance differ by more than 10 s are dropped.

An epoch's batch list is a pure function of (lengths, seed, epoch), so the sampler's whole state is
``(epoch, position)``: exact resume needs nothing else.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass

import numpy as np

from curate.audio import SAMPLE_RATE

log = logging.getLogger(__name__)


@dataclass
class EpochPlan:
    batches: list[np.ndarray]  # indices into the source, per batch
    dropped: int  # batches dropped for spread > max_spread_s
    dropped_s: float  # audio in them


def plan_epoch(
    lengths: np.ndarray,
    ids: np.ndarray,
    budget: int,
    seed: int,
    epoch: int,
    bin_size: int = 5000,
    queue_size: int = 300,
    max_spread_s: float = 10.0,
) -> EpochPlan:
    """``lengths`` [n] samples of the utterances ``ids`` → this epoch's batches (shuffled order).
    A batch's cost is ``count × longest`` (what padding would allocate), kept ≤ ``budget``."""
    rng = np.random.default_rng([seed, 1, epoch])
    order = ids[np.argsort(lengths, kind="stable")]
    bins = [order[i : i + bin_size] for i in range(0, len(order), bin_size)]
    stream = np.concatenate([rng.permutation(bins[b]) for b in rng.permutation(len(bins))]) if bins else order
    length_of = dict(zip(ids.tolist(), lengths.tolist(), strict=True))

    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0

    def take(i: int) -> None:
        nonlocal cur, cur_max
        n = length_of[i]
        if cur and max(cur_max, n) * (len(cur) + 1) > budget:
            batches.append(cur)
            cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, n)

    heap: list[tuple[int, int]] = []
    for i in stream.tolist():  # random draws feed the queue …
        heapq.heappush(heap, (length_of[i], i))
        if len(heap) >= queue_size:  # … which releases its shortest member
            take(heapq.heappop(heap)[1])
    while heap:
        take(heapq.heappop(heap)[1])
    if cur:
        batches.append(cur)

    kept, dropped, dropped_s = [], 0, 0.0
    max_spread = max_spread_s * SAMPLE_RATE
    for b in batches:
        ls = [length_of[i] for i in b]
        if max(ls) - min(ls) > max_spread:
            dropped += 1
            dropped_s += sum(ls) / SAMPLE_RATE
        else:
            kept.append(np.asarray(b, dtype=np.int64))
    return EpochPlan([kept[j] for j in rng.permutation(len(kept))], dropped, dropped_s)


class BatchStream:
    """Endless stream of global batch indices over epochs; ``state()``/``load_state()`` for exact resume.

    Each optimizer step consumes ``world × accumulation`` consecutive batches; rank r takes the ones at
    positions a·world + r. The pair (step, position) fixes every batch and every random draw.
    ``lengths`` may be a function epoch → lengths (dataset-level concatenation changes them every epoch).
    """

    def __init__(self, lengths: np.ndarray, ids: np.ndarray, budget: int, seed: int, **kw):
        self.lengths, self.ids, self.budget, self.seed, self.kw = lengths, ids, budget, seed, kw
        self.epoch, self.pos, self.consumed = 0, 0, 0
        self._plan: EpochPlan | None = None
        self.dropped_total = 0

    def plan(self) -> EpochPlan:
        if self._plan is None:
            lengths = self.lengths(self.epoch) if callable(self.lengths) else self.lengths
            self._plan = plan_epoch(lengths, self.ids, self.budget, self.seed, self.epoch, **self.kw)
            if not self._plan.batches:
                raise ValueError(
                    "no batch fits: the sample budget is smaller than the shortest utterance, or every "
                    "batch spans more than max_spread_s; raise data.batch_samples"
                )
            if self._plan.dropped:
                log.info(
                    "epoch %d: %d batches (%.1f s of audio) dropped: longest − shortest > max_spread_s",
                    self.epoch,
                    self._plan.dropped,
                    self._plan.dropped_s,
                )
        return self._plan

    def next(self) -> tuple[np.ndarray, int, int]:
        """→ (indices, epoch, global batch number)."""
        plan = self.plan()
        if self.pos >= len(plan.batches):
            self.dropped_total += plan.dropped
            self.epoch, self.pos, self._plan = self.epoch + 1, 0, None
            plan = self.plan()
        b = plan.batches[self.pos]
        self.pos += 1
        self.consumed += 1
        return b, self.epoch, self.consumed - 1

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.pos / max(1, len(self.plan().batches))

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "consumed": self.consumed, "dropped_total": self.dropped_total}

    def load_state(self, s: dict) -> None:
        self.epoch, self.pos, self.consumed, self.dropped_total = (
            s["epoch"],
            s["pos"],
            s["consumed"],
            s["dropped_total"],
        )
        self._plan = None
