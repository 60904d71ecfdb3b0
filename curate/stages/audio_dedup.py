"""Audio-level de-duplication: reruns, jingles and adverts found by listening (Chromaprint fingerprints),
not by metadata.

The matching is a pure function over raw fingerprints (``uint32`` arrays, one item per ``ITEM_S`` seconds),
in catalog order (publication time, then id), so "first" means first broadcast:

1. **Index**: every informative item (one that differs from its predecessor: static audio such as silence
   or a held tone carries no identity) → its (recording, position), sorted by hash. Each hash keeps only
   its ``max_postings`` *earliest* occurrences: a later copy of an excerpt only needs to find one earlier
   copy, so a jingle heard in 100 k programmes costs a query no more than one heard in 2, and the total
   cost grows linearly with the catalog.
2. **Votes**: each item of a query recording looks its hash up; every hit on an earlier recording votes
   for (recording, offset = their position − its position), together with the two neighbouring offsets
   (a copy shifted by a fraction of an item splits its exact hits between two offsets).
3. **Verification**: the best-voted candidates are aligned and compared bit by bit; a run of items whose
   bit error rate (smoothed over ``smooth_items``) stays under ``max_ber`` and lasts ``min_match_s`` is a
   match. Unrelated audio differs in ~50 % of bits, a re-encoded copy in 1-10 %.

A recording covered at ``rerun_coverage`` or more by matches with *one* other recording is a whole duplicate
(a rerun, trimmed or padded; when both cover each other, ``keep`` decides which stays). The remaining
recordings are matched again among themselves; every span heard earlier is a repeat (the earliest stays).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate import manifest, timeline
from curate.errors import ConfigError
from curate.registry import register
from curate.schema import Repeat
from curate.stages.base import Aggregate

log = logging.getLogger(__name__)

ITEM_S = 4096 / 3 / 11025  # Chromaprint's item spacing (curate.models.fingerprint.ITEM_S; no model import here)
# A match of items [s, e) covers audio from s * ITEM_S + EDGE_START_S to e * ITEM_S + EDGE_END_S: an item
# summarises ~2.7 s of audio after its start (a 0.37 s frame, 5-frame chroma smoothing, classifiers up to 16
# frames wide), so a run starts before the repeated audio does. Medians measured on jingles and adverts placed
# after speech (docs/audio_dedup.md); a run that reaches a recording's first or last item reaches its edge.
EDGE_START_S = 1.0
EDGE_END_S = 0.6


@dataclass(frozen=True)
class MatchParams:
    min_match_s: float = 5.0  # shortest matched excerpt
    max_ber: float = 0.3  # smoothed bit error rate under which aligned items match
    smooth_items: int = 5  # moving-average window of the bit error rate (items)
    max_gap_items: int = 3  # matched runs this close are one match
    min_votes: int = 4  # hash hits (offset ± 1) before a candidate is verified
    max_candidates: int = 24  # best-voted candidates verified per query recording
    max_postings: int = 32  # earliest occurrences kept per hash
    hash_bits: int = 24  # index key: the top bits of each 32-bit item (re-encoded audio flips low bits)
    within_recording: bool = False  # also find excerpts repeated inside one recording

    @property
    def min_items(self) -> int:
        return max(1, int(round((self.min_match_s - (EDGE_END_S - EDGE_START_S)) / ITEM_S)))


@dataclass(frozen=True)
class Match:
    """Items ``[start, end)`` of recording ``query`` match items ``[start + offset, end + offset)`` of ``ref``,
    which comes earlier in catalog order (or is ``query`` itself, earlier in it)."""

    query: int
    ref: int
    start: int
    end: int
    offset: int
    ber: float


def informative(fp: np.ndarray) -> np.ndarray:
    """Positions of items that differ from their predecessor (static audio repeats one hash)."""
    if fp.size == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, fp[1:] != fp[:-1]])


class FingerprintIndex:
    """Inverted index hash → (recording, position), sorted arrays, ``max_postings`` earliest per hash."""

    def __init__(self, fps: Sequence[np.ndarray], max_postings: int = 32, hash_bits: int = 32) -> None:
        self.shift = 32 - hash_bits
        pos = [informative(fp) for fp in fps]
        keys = np.concatenate([self.key(fp[p]) for fp, p in zip(fps, pos, strict=True)] or [np.zeros(0, np.uint32)])
        recs = np.concatenate([np.full(p.size, r, np.int32) for r, p in enumerate(pos)] or [np.zeros(0, np.int32)])
        posv = np.concatenate([p.astype(np.int32) for p in pos] or [np.zeros(0, np.int32)])
        order = np.lexsort((posv, recs, keys))  # by hash, then earliest recording, then position
        keys, recs, posv = keys[order], recs[order], posv[order]
        if keys.size:
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            rank = np.arange(keys.size) - np.repeat(starts, np.diff(np.r_[starts, keys.size]))
            keep = rank < max_postings
            keys, recs, posv = keys[keep], recs[keep], posv[keep]
        self.keys, self.recs, self.pos = keys, recs, posv

    def __len__(self) -> int:
        return int(self.keys.size)

    def key(self, items: np.ndarray) -> np.ndarray:
        """The index key of fingerprint items: their top ``hash_bits`` bits."""
        return (items >> np.uint32(self.shift)).astype(np.uint32) if self.shift else items

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(index into ``hashes``, recording, position) of every posting of every hash."""
        lo = np.searchsorted(self.keys, hashes, "left")
        counts = np.searchsorted(self.keys, hashes, "right") - lo
        total = int(counts.sum())
        which = np.repeat(np.arange(hashes.size), counts)
        idx = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        return which, self.recs[idx], self.pos[idx]


def candidates(index: FingerprintIndex, fp: np.ndarray, q: int, params: MatchParams) -> list[tuple[int, int, int]]:
    """(ref, offset, votes) of earlier recordings (or earlier in ``q``) that share hashes with ``fp``."""
    qpos = informative(fp)
    which, rec, pos = index.lookup(index.key(fp[qpos]))
    qp = qpos[which]
    earlier = rec < q
    if params.within_recording:
        earlier |= (rec == q) & (pos <= qp - params.min_items)
    rec, off = rec[earlier].astype(np.int64), (pos[earlier] - qp[earlier]).astype(np.int64)
    if rec.size == 0:
        return []
    code = (rec << 32) | (off + (1 << 31))
    uniq, votes = np.unique(code, return_counts=True)
    near = votes.copy()  # votes of offset ± 1 count too: a sub-item shift splits exact hits between them
    for d in (-1, 1):
        j = np.searchsorted(uniq, uniq + d)
        hit = (j < uniq.size) & (uniq[np.minimum(j, uniq.size - 1)] == uniq + d)
        near[hit] += votes[j[hit]]
    ok = np.flatnonzero(near >= params.min_votes)
    best = ok[np.argsort(-near[ok], kind="stable")]
    out: list[tuple[int, int, int]] = []
    seen: set[tuple[int, int]] = set()
    for i in best:  # one candidate per (ref, offset ± 1) neighbourhood
        ref, offset = int(uniq[i] >> 32), int((uniq[i] & 0xFFFFFFFF) - (1 << 31))
        if any((ref, offset + d) in seen for d in (-1, 0, 1)):
            continue
        seen.add((ref, offset))
        out.append((ref, offset, int(near[i])))
        if len(out) >= params.max_candidates:
            break
    return out


def runs(mask: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """[start, end) of True runs, runs separated by at most ``max_gap`` False items joined."""
    if not mask.any():
        return []
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    out: list[tuple[int, int]] = []
    for s, e in zip(edges[::2], edges[1::2], strict=True):
        if out and s - out[-1][1] <= max_gap:
            out[-1] = (out[-1][0], int(e))
        else:
            out.append((int(s), int(e)))
    return out


def verify(a: np.ndarray, b: np.ndarray, offset: int, params: MatchParams) -> list[tuple[int, int, float]]:
    """Matched item runs ``(start, end, mean bit error rate)`` of ``a`` against ``b`` shifted by ``offset``."""
    lo, hi = max(0, -offset), min(a.size, b.size - offset)
    if hi - lo < params.min_items:
        return []
    ber = np.bitwise_count(a[lo:hi] ^ b[lo + offset : hi + offset]).astype(np.float32) / 32.0
    w = max(1, params.smooth_items)
    smooth = np.convolve(ber, np.ones(w, np.float32) / w, "same") if w > 1 else ber
    out = []
    for s, e in runs(smooth < params.max_ber, params.max_gap_items):
        if offset < 0 and params.within_recording:
            e = min(e, s - offset)  # a span inside its own recording must not overlap its earlier copy
        if e - s >= params.min_items:
            out.append((s + lo, e + lo, float(ber[s:e].mean())))
    return out


def find_matches(fps: Sequence[np.ndarray], params: MatchParams) -> list[Match]:
    """Every span of every recording heard earlier (in the order of ``fps``)."""
    index = FingerprintIndex(fps, params.max_postings, params.hash_bits)
    out = []
    for q, fp in enumerate(fps):
        for ref, offset, _ in candidates(index, fp, q, params):
            out += [Match(q, ref, s, e, offset, ber) for s, e, ber in verify(fp, fps[ref], offset, params)]
    return out


def find_reruns(
    matches: Sequence[Match], num_items: Sequence[int], coverage: float = 0.8, keep: str = "first"
) -> dict[int, tuple[int, float]]:
    """Whole duplicates: ``{dropped: (kept, share of dropped covered)}``. A recording is one when matches with a
    single other recording cover ``coverage`` of it; when both cover each other, ``keep`` says which stays
    (``first`` in order, or ``longest``). Chains resolve to the recording that stays."""
    spans: dict[tuple[int, int], tuple[list, list]] = defaultdict(lambda: ([], []))
    for m in matches:
        if m.ref != m.query:
            q_spans, r_spans = spans[(m.query, m.ref)]
            q_spans.append((m.start, m.end))
            r_spans.append((m.start + m.offset, m.end + m.offset))
    dropped: dict[int, tuple[int, float]] = {}
    for (q, r), (q_spans, r_spans) in sorted(spans.items()):
        cov_q = timeline.total(timeline.merge(q_spans)) / max(num_items[q], 1)
        cov_r = timeline.total(timeline.merge(r_spans)) / max(num_items[r], 1)
        if max(cov_q, cov_r) < coverage:
            continue
        if cov_q >= coverage and cov_r >= coverage:
            later_is_dup = keep == "first" or num_items[q] <= num_items[r]
            dup, other, cov = (q, r, cov_q) if later_is_dup else (r, q, cov_r)
        else:
            dup, other, cov = (q, r, cov_q) if cov_q >= coverage else (r, q, cov_r)
        if dup not in dropped and other != dup:
            dropped[dup] = (other, cov)
    for dup, (other, cov) in list(dropped.items()):
        seen = {dup}
        while other in dropped and other not in seen:
            seen.add(other)
            other = dropped[other][0]
        dropped[dup] = (other, cov)
    return {d: v for d, v in dropped.items() if v[0] != d}


def repeat_spans(matches: Sequence[Match]) -> list[Match]:
    """Matches merged per (query, ref) where they overlap (neighbouring offsets of one copy), sorted."""
    out: list[Match] = []
    for m in sorted(matches, key=lambda m: (m.query, m.ref, m.start)):
        last = out[-1] if out else None
        if (
            last
            and (last.query, last.ref) == (m.query, m.ref)
            and m.start <= last.end
            and abs(m.offset - last.offset) <= 2
        ):
            w = (last.end - last.start, m.end - m.start)
            ber = (last.ber * w[0] + m.ber * w[1]) / sum(w)
            out[-1] = Match(m.query, m.ref, last.start, max(last.end, m.end), last.offset, ber)
        else:
            out.append(m)
    return out


def item_span_s(start: int, end: int, num_items: int, duration_s: float) -> tuple[float, float]:
    """Seconds of audio that items ``[start, end)`` of a match cover, in a recording of ``num_items`` items."""
    start_s = 0.0 if start <= 0 else min(duration_s, start * ITEM_S + EDGE_START_S)
    end_s = duration_s if end >= num_items else min(duration_s, end * ITEM_S + EDGE_END_S)
    return start_s, max(start_s, end_s)


def catalog_order(df: pd.DataFrame) -> pd.DataFrame:
    """First broadcast first: publication time (unknown last), then recording id."""
    return df.assign(_unpublished=df["published"].isna()).sort_values(
        ["_unpublished", "published", "recording_id"], kind="stable"
    )


@register("audio_dedup")
@dataclass
class AudioDedup(Aggregate):
    """Drops whole-recording duplicates (reason ``audio_duplicate``) and writes ``repeats.parquet``."""

    requires = ("fingerprint",)
    min_repeat_s: float = 5.0  # shortest repeated excerpt (jingle, advert, recurring report) to record
    rerun_coverage: float = 0.8  # share of a recording heard in one other recording that makes it a rerun
    keep: str = "first"  # of two recordings that cover each other: "first" (in broadcast order) or "longest"
    max_bit_error: float = 0.3  # smoothed share of differing fingerprint bits under which audio matches
    min_votes: int = 4
    max_candidates: int = 24
    max_postings: int = 32
    hash_bits: int = 24  # bits of each fingerprint item used as the index key (32: exact items only)
    within_recording: bool = False  # also cut excerpts repeated inside one recording (music loops match too)

    def validate(self) -> None:
        if self.keep not in ("first", "longest"):
            raise ConfigError(f"audio_dedup.keep: expected 'first' or 'longest', got {self.keep!r}")
        if not 0 < self.rerun_coverage <= 1:
            raise ConfigError(f"audio_dedup.rerun_coverage must be in (0, 1], got {self.rerun_coverage}")
        if not 0 < self.max_bit_error < 0.5:
            raise ConfigError(f"audio_dedup.max_bit_error must be in (0, 0.5), got {self.max_bit_error}")
        if not 8 <= self.hash_bits <= 32:
            raise ConfigError(f"audio_dedup.hash_bits must be in 8..32, got {self.hash_bits}")
        if self.min_repeat_s < 2 * ITEM_S + EDGE_END_S - EDGE_START_S:
            raise ConfigError(f"audio_dedup.min_repeat_s must be at least 1 s, got {self.min_repeat_s}")

    def match_params(self) -> MatchParams:
        return MatchParams(
            min_match_s=self.min_repeat_s,
            max_ber=self.max_bit_error,
            min_votes=self.min_votes,
            max_candidates=self.max_candidates,
            max_postings=self.max_postings,
            hash_bits=self.hash_bits,
            within_recording=self.within_recording,
        )

    def drop(self, df: pd.DataFrame) -> pd.DataFrame:
        from curate.stages.fingerprint import load_fingerprints

        run = self.run_dir
        ordered = catalog_order(df)
        ids = ordered["recording_id"].tolist()
        durations = dict(zip(ordered["recording_id"], ordered["duration_s"], strict=True))
        fps_by_id = load_fingerprints(run, set(ids))
        missing = [r for r in ids if r not in fps_by_id]
        if missing:
            raise ConfigError(f"audio_dedup: no fingerprint for {len(missing)} recording(s) ({missing[:3]} …) in {run}")
        fps = [fps_by_id[r] for r in ids]
        params = self.match_params()
        reruns = find_reruns(find_matches(fps, params), [fp.size for fp in fps], self.rerun_coverage, self.keep)
        kept = [i for i in range(len(ids)) if i not in reruns]
        rows = []
        for m in repeat_spans(find_matches([fps[i] for i in kept], params)):
            q, ref = ids[kept[m.query]], ids[kept[m.ref]]
            start_s, end_s = item_span_s(m.start, m.end, fps_by_id[q].size, durations[q])
            first_s = item_span_s(m.start + m.offset, m.end + m.offset, fps_by_id[ref].size, durations[ref])[0]
            if end_s - start_s >= self.min_repeat_s:
                rows.append(Repeat(q, start_s, end_s, end_s - start_s, ref, first_s, round(m.ber, 4)))
        manifest.write_records(run.repeats, rows, "repeats")
        log.info(
            "audio_dedup: %d reruns, %d repeated excerpts (%.0f s)",
            len(reruns),
            len(rows),
            sum(r.duration_s for r in rows),
        )
        drop = sorted(reruns.items())
        return pd.DataFrame(
            {
                "recording_id": [ids[d] for d, _ in drop],
                "reason": "audio_duplicate",
                "duplicate_of": [ids[k] for _, (k, _) in drop],
            }
        )
