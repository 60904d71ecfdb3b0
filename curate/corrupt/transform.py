"""The corruption simulator as the pre-trainer uses it: a collate-time batch transform and a dataset-level
concatenation transform. Both are deterministic functions of ``(seed, epoch, batch_idx)`` and their inputs.

Collate time (``2spk-mix-*``, ``sub-*``, ``mix-*``)::

    from curate.corrupt import CorruptionTransform, Sources, load_condition, musan_pool

    cond = load_condition("mix-noise-33")                 # configs/corruption/mix-noise-33.yaml
    corrupt = CorruptionTransform(cond, Sources(noise=musan_pool("/data/musan")), seed=1234)
    waves, events = corrupt(waves, epoch=epoch, batch_idx=step, is_validation=False, speakers=None)

``condition`` may also be a preset name / YAML path, and ``sources`` a dict of paths (``noise``: MUSAN root,
``music``: FMA root, ``stems``: stems folder, ``musan_categories``), as a trainer config gives them.
``waves`` is a list of 1-D float32 numpy arrays (16 kHz mono, any lengths); the result has the same lengths, with
the chosen utterances replaced by new arrays (the others are the very same objects, not copied). ``events``
lists one :class:`Corruption` per corrupted utterance. ``is_validation=True`` returns the batch untouched.

Dataset level (``1spk-concat``, ``2spk-concat``)::

    pairs = ConcatTransform(load_condition("1spk-concat"), seed=1234).pairs(utterances, epoch=0)
    # [(i, j), ...]: example = concat(audio[i], audio[j]); j is None when i has no valid partner
"""

from __future__ import annotations

import heapq
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from curate.corrupt.conditions import (
    Condition,
    ConditionError,
    batch_rng,
    choose,
    fit_length,
    place,
    scale_to_snr,
    substitute,
)
from curate.corrupt.sources import Sources, Utterance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Corruption:
    """What was done to one utterance of a batch (offsets in samples at 16 kHz)."""

    index: int  # position in the batch
    condition: str
    kind: str  # mix | sub
    source: str  # speech | noise | music | instrumental | vocals
    source_id: str  # clip id, or "batch:<j>" for a partner from the same batch
    source_offset: int  # start in the source (>= 0); < 0: the source starts -offset samples into the utterance
    num_samples: int
    gain: float  # factor applied to the source
    snr_db: float | None  # drawn (= realized) SNR for mix conditions; None for sub

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CorruptionTransform:
    """Corrupt a fraction of each training batch (see the module docstring for the API)."""

    def __init__(self, condition: Condition | str, sources: Sources | dict[str, Any] | None = None, seed: int = 0):
        if not isinstance(condition, Condition):  # a preset name, YAML path or thesis name (from a trainer config)
            from curate.corrupt.conditions import load_condition

            condition = load_condition(condition)
        condition.validate()
        if isinstance(sources, dict):  # {noise: MUSAN root, music: FMA root, stems: dir, musan_categories: [...]}
            from curate.corrupt.readers import build_sources

            unknown = set(sources) - {"noise", "music", "stems", "musan_categories"}
            if unknown:
                raise ConditionError(
                    f"corruption sources: unknown key(s) {sorted(unknown)}; valid: noise, music, "
                    "stems, musan_categories"
                )
            sources = build_sources(
                condition,
                sources.get("noise"),
                sources.get("music"),
                sources.get("stems"),
                sources.get("musan_categories") or ("noise",),
            )
        if condition.kind == "concat":
            raise ConditionError(
                f"'{condition.name}' is a dataset-level condition: use ConcatTransform, not the "
                "collate-time CorruptionTransform"
            )
        self.condition = condition
        self.sources = sources or Sources()
        self.seed = int(seed)
        self.skipped_no_partner = 0  # 2spk-mix utterances left clean: no other speaker to mix in
        if condition.source != "speech":  # fail before training starts, not at the first batch
            self.pool = self.sources.require(condition.source, condition.name)
        else:
            self.pool = self.sources.speech

    def __call__(
        self,
        batch: Sequence[np.ndarray],
        epoch: int,
        batch_idx: int,
        is_validation: bool = False,
        speakers: Sequence[str | None] | None = None,
    ) -> tuple[list[np.ndarray], list[Corruption]]:
        out = list(batch)
        if is_validation:
            return out, []
        if speakers is not None and len(speakers) != len(out):
            raise ValueError(f"speakers has {len(speakers)} labels for a batch of {len(out)}")
        rng = batch_rng(self.seed, epoch, batch_idx)
        nonempty = np.array([i for i, x in enumerate(out) if x.size > 0], dtype=np.int64)
        chosen = nonempty[choose(len(nonempty), self.condition.fraction, rng)]
        events = []
        for i in chosen:
            i = int(i)
            y, event = self._corrupt_one(batch, i, rng, speakers)
            if event is None:
                continue
            out[i] = y
            events.append(event)
        return out, events

    def _corrupt_one(
        self, batch: Sequence[np.ndarray], i: int, rng: np.random.Generator, speakers: Sequence[str | None] | None
    ) -> tuple[np.ndarray, Corruption | None]:
        c = self.condition
        x = np.asarray(batch[i], dtype=np.float32)
        n = x.size
        snr = float(rng.uniform(*c.snr_db)) if c.kind == "mix" else None
        if c.source == "speech":
            found = self._partner(batch, i, rng, speakers)
            if found is None:
                # A batch of one utterance (or of one speaker) and no speech pool: nothing to mix in. Skipping
                # beats crashing a days-long run; the count is reported so the ablation stays honest.
                self.skipped_no_partner += 1
                if self.skipped_no_partner == 1:
                    log.warning(
                        "%s: a batch had no utterance of another speaker to mix in; that utterance stays "
                        "clean (give a speech pool, or larger batches, to avoid this)",
                        c.name,
                    )
                return x, None
            src_id, partner = found
            added, offset = place(partner, n, rng)
        else:
            src_id, src = self.pool.draw(int(rng.integers(len(self.pool))))
            added, offset = fit_length(src, n, rng)
        if c.kind == "mix":
            scaled, gain = scale_to_snr(x, added, snr)
            y = (x + scaled).astype(np.float32, copy=False)
        else:
            y, gain = substitute(x, added)
        return y, Corruption(i, c.name, c.kind, c.source, src_id, offset, n, gain, snr)

    def _partner(
        self, batch: Sequence[np.ndarray], i: int, rng: np.random.Generator, speakers: Sequence[str | None] | None
    ) -> tuple[str, np.ndarray] | None:
        """A second speaker: from ``Sources.speech`` when given, else another utterance of the batch; ``None``
        when there is none."""
        me = speakers[i] if speakers is not None else None
        if self.pool is not None and len(self.pool):
            for _ in range(16):  # rejection sampling: O(1) per draw on a large speech pool
                k = int(rng.integers(len(self.pool)))
                if me is None or self.pool.clips[k].speaker != me:
                    return self.pool.draw(k)
            ok = [k for k, clip in enumerate(self.pool.clips) if clip.speaker != me]
            if ok:
                return self.pool.draw(ok[int(rng.integers(len(ok)))])
        cands = [
            j
            for j in range(len(batch))
            if j != i and batch[j].size > 0 and (me is None or speakers is None or speakers[j] != me)
        ]
        if not cands:
            return None
        j = cands[int(rng.integers(len(cands)))]
        return f"batch:{j}", np.asarray(batch[j], dtype=np.float32)


# ---------------------------------------------------------------------------------------------------
# Dataset level: concatenation.


class ConcatTransform:
    """Pairs utterances for ``1spk-concat`` (same session) or ``2spk-concat`` (different speakers).

    Every utterance is the first element of exactly one example, so an epoch has as many examples as
    utterances and twice the audio. The partner is drawn at random, without reuse where the groups allow it.
    ``pairs()`` returns ``(i, j)`` index pairs; ``j`` is None for an utterance that has no valid partner (the
    only utterance of its session, or of a dataset with one speaker): it stays a single utterance.
    """

    def __init__(self, condition: Condition, seed: int = 0):
        condition.validate()
        if condition.kind != "concat":
            raise ConditionError(f"'{condition.name}' is not a concatenation condition; use CorruptionTransform")
        self.condition = condition
        self.seed = int(seed)

    def pairs(self, utterances: Sequence[Utterance], epoch: int = 0) -> list[tuple[int, int | None]]:
        rng = batch_rng(self.seed, epoch, 0, stream=1)  # the dataset-level stream of this epoch
        if self.condition.pairing == "same-session":
            missing = [u.key for u in utterances if u.session is None]
            if missing:
                raise ValueError(
                    f"1spk-concat needs a session (chapter) for every utterance; missing for "
                    f"{len(missing)}, e.g. {missing[:3]}"
                )
            out = _pair_within(utterances, rng)
        else:
            out = _pair_across(utterances, rng)
        single = sum(1 for _, j in out if j is None)
        if single:
            log.warning(
                "%s: %d of %d utterances have no valid partner and stay single",
                self.condition.name,
                single,
                len(utterances),
            )
        return sorted(out)

    @staticmethod
    def apply(first: np.ndarray, second: np.ndarray | None) -> np.ndarray:
        from curate.corrupt.conditions import concat

        return np.asarray(first, dtype=np.float32) if second is None else concat(first, second)


def _pair_within(utts: Sequence[Utterance], rng: np.random.Generator) -> list[tuple[int, int | None]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(utts):
        groups[str(u.session)].append(i)
    out: list[tuple[int, int | None]] = []
    for key in sorted(groups):
        g = [groups[key][k] for k in rng.permutation(len(groups[key]))]
        if len(g) == 1:
            out.append((g[0], None))
            continue
        for a in range(0, len(g) - 1, 2):  # disjoint pairs, both orders: each index is a first element once
            out += [(g[a], g[a + 1]), (g[a + 1], g[a])]
        if len(g) % 2:
            last = g[-1]
            out.append((last, g[int(rng.integers(len(g) - 1))]))
    return out


def _pair_across(utts: Sequence[Utterance], rng: np.random.Generator) -> list[tuple[int, int | None]]:
    """Greedy: repeatedly pair one utterance of each of the two speakers with the most left (random
    tie-break), which pairs everything when no speaker holds more than half; the rest get a reused partner."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(utts):
        groups[u.speaker if u.speaker is not None else f"\0unknown:{i}"].append(i)
    keys = sorted(groups)
    ties = rng.permutation(len(keys))
    heap = []
    for t, k in zip(ties, keys, strict=True):
        members = [groups[k][m] for m in rng.permutation(len(groups[k]))]
        heap.append((-len(members), int(t), k, members))
    heapq.heapify(heap)
    out: list[tuple[int, int | None]] = []
    while len(heap) >= 2:
        n1, t1, k1, m1 = heapq.heappop(heap)
        n2, t2, k2, m2 = heapq.heappop(heap)
        a, b = m1.pop(), m2.pop()
        out += [(a, b), (b, a)]
        for n, t, k, m in ((n1, t1, k1, m1), (n2, t2, k2, m2)):
            if m:
                heapq.heappush(heap, (n + 1, t, k, m))
    if heap:
        _, _, k, rest = heap[0]
        mine = set(groups[k])
        others = [i for i in range(len(utts)) if i not in mine]
        for a in rest:
            out.append((a, others[int(rng.integers(len(others)))] if others else None))
    return out


def make_transforms(condition: Condition, sources: Sources | None = None, seed: int = 0):
    """``(dataset_transform, batch_transform)`` for a condition: exactly one of them is not None."""
    if condition.kind == "concat":
        return ConcatTransform(condition, seed), None
    return None, CorruptionTransform(condition, sources, seed)


__all__ = ["ConcatTransform", "Corruption", "CorruptionTransform", "make_transforms"]
