"""The held-out split of pre-training, and the validation set an ablation shares between its cells.

Rules (``data.val_split``), each holding out whole utterances:
- ``median_per_session`` (thesis): one median-length utterance per session with ≥ 2 utterances. Empty when every
  utterance is its own recording (a LibriSpeech run directory): then the pre-trainer falls back to ``share``.
- ``speaker``: whole speakers (LibriSpeech speaker, else the recording-scoped label) until ``val_fraction`` of the
  utterances are held out, at least one speaker, never all of them.
- ``group``: whole recording groups (LibriSpeech chapter, else the recording), the same way.
- ``share`` (alias ``random``): a seeded ``val_fraction`` of the utterances, at least one, never all.
The rule used is stated in the run's summary (``val_split``); a split that would hold out nothing, or leave
nothing to train on, is refused before any training.

A shared validation set (``data.val_set`` = a JSON file written by :func:`write_val_set`) lists held-out segments
as views into audio files. Every cell of an ablation validates on exactly those utterances, and each cell's
training data excludes them: every segment of a held-out speaker/group, and every segment overlapping a held-out
one in time on the same audio file (so different segmentations of the same recordings cannot leak).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.audio import SAMPLE_RATE
from curate.errors import ConfigError

RULES = ("median_per_session", "speaker", "group", "share", "random")


class HeldOutError(ConfigError):
    """The held-out split would be empty (or leave nothing to train on)."""


def keys_for(source, rule: str) -> np.ndarray:
    """The grouping key of each segment of ``source`` under ``rule`` (object array of str)."""
    n = len(source.lengths)
    if rule in ("share", "random"):
        return np.asarray([str(i) for i in range(n)], dtype=object)
    sessions = np.asarray([str(s) for s in source.sessions], dtype=object)
    if rule == "median_per_session":
        return sessions
    utts = _utterances(source)
    if utts is None:
        return sessions
    if rule == "group":
        return np.asarray([u.session or s for u, s in zip(utts, sessions, strict=True)], dtype=object)
    # speaker: an unknown speaker counts as its own session's speaker
    return np.asarray([u.speaker or f"session:{s}" for u, s in zip(utts, sessions, strict=True)], dtype=object)


def _utterances(source) -> list | None:
    """Pairing keys (speaker, session) when the source can tell them (a run directory needs recordings.parquet)."""
    from curate.corrupt.readers import CorpusError

    try:
        return source.utterances()
    except (OSError, CorpusError, KeyError):
        return None


def split(
    keys: np.ndarray, lengths: np.ndarray, rule: str, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) of the segments with grouping ``keys`` under ``rule`` (see the module docstring)."""
    idx = np.arange(len(lengths))
    if rule not in RULES:
        raise ConfigError(f"data.val_split: expected one of {', '.join(RULES)}, got {rule!r}")
    if len(idx) < 2:
        return idx, idx[:0]
    if rule == "median_per_session":
        order = np.lexsort((idx, lengths, keys.astype(str)))  # by session, then length, then index
        s_sorted = keys[order].astype(str)
        starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        ends = np.r_[starts[1:], len(order)]
        val = np.array([order[(a + b - 1) // 2] for a, b in zip(starts, ends, strict=True) if b - a >= 2], dtype=int)
        return np.setdiff1d(idx, val), np.sort(val)
    rng = np.random.default_rng([seed, 31])
    groups = sorted(set(keys.tolist()))
    if len(groups) < 2:
        return idx, idx[:0]
    want = max(1, round(fraction * len(idx)))
    taken, count = [], 0
    for g in rng.permutation(len(groups)).tolist():  # whole groups until the share is reached
        if count >= want or len(taken) == len(groups) - 1:
            break
        taken.append(groups[g])
        count += int(np.sum(keys == groups[g]))
    val = np.flatnonzero(np.isin(keys, taken))
    return np.setdiff1d(idx, val), val


def split_source(source, usable: np.ndarray, lengths: np.ndarray, rule: str, fraction: float, seed: int):
    """(train ids, val ids, rule used) over the ``usable`` source indices. ``median_per_session`` that holds out
    nothing falls back to ``share``; a split still empty raises :class:`HeldOutError` (before any training)."""
    keys = keys_for(source, rule)[usable]
    tr, va = split(keys, lengths[usable], rule, fraction, seed)
    if len(va) == 0 and rule == "median_per_session":
        rule = "share"
        tr, va = split(keys_for(source, rule)[usable], lengths[usable], rule, max(fraction, 0.01), seed)
    if len(va) == 0 or len(tr) == 0:
        raise HeldOutError(
            f"{source.name}: data.val_split={rule} holds out {len(va)} and trains on {len(tr)} of {len(usable)} "
            f"usable utterances: need at least 2 utterances (and 2 speakers/groups for the speaker/group rules); "
            f"use data.val_split=share or more data"
        )
    return usable[tr], usable[va], rule


# ------------------------------------------------------------------------------------ the shared validation set


@dataclass
class ValSet:
    """Held-out segments (views into audio files) shared by the cells of an ablation."""

    rule: str
    fraction: float
    seed: int
    source: str  # where the segments were chosen: RUN:VARIANT
    keys: list[str]  # held-out speakers / groups (rule speaker|group), else the held-out segment ids
    segments: list[dict[str, Any]] = field(default_factory=list)  # segment_id, audio_path, start_s, end_s, key

    @property
    def hours(self) -> float:
        return sum(s["end_s"] - s["start_s"] for s in self.segments) / 3600

    def record(self) -> dict[str, Any]:
        """What a cell's record states about its validation (not the segment list)."""
        groups = len(self.keys) if self.rule in ("speaker", "group") else None
        return {
            "rule": self.rule,
            "fraction": self.fraction,
            "utterances": len(self.segments),
            "groups": groups,
            "hours": self.hours,
            "source": self.source,
        }


def choose_val_set(source, rule: str, fraction: float, seed: int, min_s: float, max_utterances: int = 0) -> ValSet:
    """Choose the shared validation set from a run-directory variant (``VariantSource``)."""
    if not hasattr(source, "paths"):
        raise ConfigError(f"{source.name}: a shared validation set is chosen from a run-directory variant")
    usable = np.flatnonzero(source.lengths >= int(min_s * SAMPLE_RATE))
    _, val, used = split_source(source, usable, source.lengths, rule, fraction, seed)
    if max_utterances and len(val) > max_utterances:
        val = np.sort(np.random.default_rng([seed, 37]).choice(val, max_utterances, replace=False))
    keys = keys_for(source, used)
    segs = [
        {
            "segment_id": source.segment_ids[i],
            "audio_path": source.paths[i],
            "start_s": float(source.start_s[i]),
            "end_s": float(source.end_s[i]),
            "key": str(keys[i]),
        }
        for i in val.tolist()
    ]
    held = sorted({s["key"] for s in segs}) if used in ("speaker", "group") else [s["segment_id"] for s in segs]
    return ValSet(used, fraction, seed, source.name, held, segs)


def write_val_set(vs: ValSet, path: str | Path) -> Path:
    from curate.manifest import write_json

    write_json(Path(path), asdict(vs))
    return Path(path)


def read_val_set(path: str | Path) -> ValSet:
    try:
        raw = json.loads(Path(path).read_text())
        return ValSet(**raw)
    except (OSError, json.JSONDecodeError, TypeError) as e:
        raise ConfigError(f"data.val_set {path}: cannot read the validation set ({type(e).__name__}: {e})") from None


class ValSetSource:
    """A ValSet's segments with the source interface (``lengths``, ``read``) that validation reads."""

    def __init__(self, vs: ValSet):
        self.segments = vs.segments
        self.lengths = np.asarray(
            [round((s["end_s"] - s["start_s"]) * SAMPLE_RATE) for s in vs.segments], dtype=np.int64
        )
        self.name = f"validation set ({vs.source}, {vs.rule})"

    def read(self, i: int) -> np.ndarray:
        from curate.audio import load

        s = self.segments[i]
        x = load(s["audio_path"], s["start_s"], s["end_s"])
        n = int(self.lengths[i])
        return x[:n] if x.size >= n else np.pad(x, (0, n - x.size))


def exclude_held_out(source, ids: np.ndarray, vs: ValSet) -> np.ndarray:
    """The ``ids`` of ``source`` that may be trained on: not of a held-out speaker/group, not a held-out segment,
    not overlapping a held-out segment on the same audio file."""
    ids = np.asarray(ids)
    drop = np.zeros(len(source.lengths), dtype=bool)
    if vs.rule in ("speaker", "group"):
        drop |= np.isin(keys_for(source, vs.rule), vs.keys)
    held_ids = {s["segment_id"] for s in vs.segments}
    seg_ids = getattr(source, "segment_ids", None)
    if seg_ids is not None:
        drop |= np.asarray([s in held_ids for s in seg_ids], dtype=bool)
    if hasattr(source, "paths"):
        by_path: dict[str, list[tuple[float, float]]] = {}
        for s in vs.segments:
            by_path.setdefault(str(s["audio_path"]), []).append((s["start_s"], s["end_s"]))
        for i, p in enumerate(source.paths):
            for a, b in by_path.get(str(p), ()):
                if source.start_s[i] < b and a < source.end_s[i]:
                    drop[i] = True
                    break
    return ids[~drop[ids]]


__all__ = [
    "HeldOutError",
    "RULES",
    "ValSet",
    "ValSetSource",
    "choose_val_set",
    "exclude_held_out",
    "keys_for",
    "read_val_set",
    "split",
    "split_source",
    "write_val_set",
]
