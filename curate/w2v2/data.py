"""Pre-training data: segments of a run-directory variant or a materialized shard directory → float32 audio.

Two sources with one interface (``lengths``, ``sessions``, ``read(i)``):
- ``VariantSource``: ``RUN/variants/<v>/part-*.parquet``; each segment is a view into a long recording and is
  read with ``curate.audio.load(path, start_s, end_s)`` (seeks in FLAC/WAV).
- ``ShardSource``: ``OUT/index.parquet`` + ``OUT/shards/shard-*.pcm16`` written by ``curate materialize``:
  raw little-endian int16 mono 16 kHz, segments concatenated; read through ``np.memmap`` (zero decode).
  (``--format flac`` directories work too: one FLAC per segment, decoded.)

``data.corruption`` selects a condition of ``curate.corrupt``: collate-time conditions corrupt training batches
(``BatchDataset.transform``); the concatenation conditions ``1spk-concat`` / ``2spk-concat`` pair the training
utterances anew each epoch (``EpochPairs``), so a training example is two utterances back to back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from curate.audio import SAMPLE_RATE
from curate.errors import ConfigError, CurateError
from curate.rundir import RunDir
from curate.w2v2.config import DataConfig

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["segment_id", "recording_id", "shard", "offset", "num_samples", "sample_rate"]


class DataError(CurateError, RuntimeError):
    """The pre-training data cannot be read (missing variant, bad index, corrupt shard)."""


class VariantSource:
    def __init__(self, run_dir: Path, variant: str):
        from curate import manifest

        run = RunDir(run_dir)
        vdir = run.variant_path(variant)
        if not vdir.is_dir():
            have = ", ".join(run.variants()) or "none"
            raise DataError(f"{vdir}: no such variant in run directory {run_dir} (have: {have})")
        t = manifest.read_table(
            vdir, "segments", columns=["segment_id", "recording_id", "audio_path", "start_s", "end_s"]
        )
        self.paths = t.column("audio_path").to_pylist()
        self.start_s = t.column("start_s").to_numpy()
        self.end_s = t.column("end_s").to_numpy()
        self.sessions = np.asarray(t.column("recording_id").to_pylist(), dtype=object)
        self.lengths = np.round((self.end_s - self.start_s) * SAMPLE_RATE).astype(np.int64)
        self.segment_ids = t.column("segment_id").to_pylist()
        self.run_dir, self.variant = Path(run_dir), variant
        self.name = f"{run_dir}:{variant}"

    def utterances(self) -> list:
        """Pairing keys (``curate.corrupt.Utterance``) of every segment, read as ``curate.corrupt.run_utterances``
        reads them: session = LibriSpeech chapter, else the recording; speaker = the recording's global speaker,
        else the segment's label scoped to its recording."""
        from curate.corrupt import run_utterances

        by_key = {u.key: u for u in run_utterances(self.run_dir, self.variant)[1]}
        return [by_key[k] for k in self.segment_ids]

    def read(self, i: int) -> np.ndarray:
        from curate.audio import load

        x = load(self.paths[i], float(self.start_s[i]), float(self.end_s[i]))
        n = int(self.lengths[i])  # decoders may differ by a sample: fix the length
        return x[:n] if x.size >= n else np.pad(x, (0, n - x.size))


class ShardSource:
    def __init__(self, out_dir: Path):
        from curate import manifest

        out_dir = Path(out_dir)
        index = out_dir / "index.parquet"
        try:
            t = manifest.read_table(index, "materialized")
        except (OSError, ValueError) as e:
            raise DataError(f"{index}: cannot read the materialized index ({type(e).__name__}: {e})") from None
        missing = [c for c in INDEX_COLUMNS if c not in t.column_names]
        if missing:
            raise DataError(f"{index}: missing column(s) {', '.join(missing)}; re-run `curate materialize`")
        rates = set(t.column("sample_rate").to_pylist())
        if rates - {SAMPLE_RATE}:
            raise DataError(f"{index}: sample rates {sorted(rates)}, expected {SAMPLE_RATE}")
        self.root, self.dir = out_dir, out_dir / "shards"
        self.shards = t.column("shard").to_pylist()
        self.offsets = t.column("offset").to_numpy().astype(np.int64)
        self.lengths = t.column("num_samples").to_numpy().astype(np.int64)
        self.sessions = np.asarray(t.column("recording_id").to_pylist(), dtype=object)
        self._maps: dict[str, np.memmap] = {}
        self.index, self.name = index, str(out_dir)

    def utterances(self) -> list:
        """Pairing keys (``curate.corrupt.Utterance``): session = a ``session`` or ``chapter`` column when the
        index has one, else the recording; speaker = the ``speaker`` column."""
        import pyarrow.parquet as pq

        from curate.corrupt import Utterance

        t = pq.read_table(self.index)
        col = next((c for c in ("session", "chapter") if c in t.column_names), "recording_id")
        sessions = [None if v is None else str(v) for v in t.column(col).to_pylist()]
        speakers = t.column("speaker").to_pylist() if "speaker" in t.column_names else [None] * t.num_rows
        return [
            Utterance(k, None if spk is None else str(spk), ses)
            for k, spk, ses in zip(t.column("segment_id").to_pylist(), speakers, sessions, strict=True)
        ]

    def _map(self, shard: str) -> np.memmap:
        m = self._maps.get(shard)
        if m is None:
            path = self.dir / shard
            if not path.exists():
                raise DataError(f"{path}: shard listed in index.parquet is missing")
            m = self._maps[shard] = np.memmap(path, dtype="<i2", mode="r")
        return m

    def read(self, i: int) -> np.ndarray:
        if not self.shards[i].endswith(".pcm16"):  # --format flac: one file per segment
            from curate.audio import load

            return load(self.root / self.shards[i])
        m = self._map(self.shards[i])
        a, n = int(self.offsets[i]), int(self.lengths[i])
        if a + n > m.size:
            raise DataError(f"{self.dir / self.shards[i]}: segment {i} ends at sample {a + n} > shard size {m.size}")
        return m[a : a + n].astype(np.float32) / 32768.0

    def __getstate__(self):  # memmaps are reopened in DataLoader workers
        return {**self.__dict__, "_maps": {}}


def open_source(path: str | Path, variant: str | None) -> VariantSource | ShardSource:
    path = Path(path)
    if (path / "index.parquet").exists():
        return ShardSource(path)
    if not RunDir(path).variants_root.is_dir():
        raise DataError(f"{path}: neither a materialized directory (index.parquet) nor a run directory (variants/)")
    if not variant:
        raise ConfigError(f"{path} is a run directory: name a variant (data.variant or --set data.variant=NAME)")
    return VariantSource(path, variant)


def split_train_val(
    sessions: np.ndarray, lengths: np.ndarray, rule: str, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val). ``median_per_session`` (thesis): one median-length utterance per session with ≥ 2
    utterances; ``random``: a seeded random fraction."""
    idx = np.arange(len(lengths))
    if rule == "random":
        rng = np.random.default_rng(seed)
        val = (
            np.sort(rng.choice(idx, size=max(1, round(fraction * len(idx))), replace=False))
            if len(idx) > 1
            else idx[:0]
        )
    elif rule == "median_per_session":
        order = np.lexsort((idx, lengths, sessions.astype(str)))  # by session, then length, then index
        s_sorted = sessions[order].astype(str)
        starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        ends = np.r_[starts[1:], len(order)]
        val = np.sort(
            np.array([order[(a + b - 1) // 2] for a, b in zip(starts, ends, strict=True) if b - a >= 2], dtype=np.int64)
        )
    else:
        raise ConfigError(f"data.val_split: expected median_per_session or random, got {rule!r}")
    return np.setdiff1d(idx, val), val


def collate(
    arrays: list[np.ndarray], crop: bool, rng: np.random.Generator, normalize: bool = False, bucket: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Utterances → (wav [B, S] float32, lengths [B] int64, waste). ``crop``: random crop of each to the shortest
    (optionally rounded down to a multiple of ``bucket`` samples), no padding; else zero-pad to the longest.
    ``waste`` = audio cropped away or padding added, as a fraction of the batch's samples."""
    lens = np.array([a.size for a in arrays], dtype=np.int64)
    if normalize:
        arrays = [(a - a.mean()) / (a.std() + 1e-5) for a in arrays]
    if crop:
        S = int(lens.min())
        if bucket:
            S = S // bucket * bucket if bucket <= S else S
        starts = [int(rng.integers(0, n - S + 1)) for n in lens]
        wav = np.stack([a[s : s + S] for a, s in zip(arrays, starts, strict=True)]).astype(np.float32)
        return wav, np.full(len(arrays), S, dtype=np.int64), float(1 - S * len(lens) / lens.sum())
    S = int(lens.max())
    wav = np.zeros((len(arrays), S), dtype=np.float32)
    for i, a in enumerate(arrays):
        wav[i, : a.size] = a
    return wav, lens, float(1 - lens.sum() / (S * len(lens)))


class EpochPairs:
    """Dataset-level concatenation of the training utterances ``ids`` (source indices): each epoch,
    ``ConcatTransform.pairs`` gives every utterance a partner and the example becomes the two back to back.
    A pure function of (seed, epoch), so the sampler state ``(epoch, position)`` still resumes exactly."""

    def __init__(self, concat, utterances: list, ids: np.ndarray, lengths: np.ndarray):
        """``concat``: a ``curate.corrupt.ConcatTransform``; ``utterances``: pairing keys of every source
        segment; ``lengths``: per source segment, already capped at ``data.max_s``."""
        self.concat, self.ids, self.lengths = concat, np.asarray(ids, dtype=np.int64), np.asarray(lengths)
        self.utterances = [utterances[i] for i in self.ids.tolist()]
        self._cache: dict[int, np.ndarray] = {}

    def partners(self, epoch: int) -> np.ndarray:
        """Per source index: its partner's source index in ``epoch``, or -1 (not trained, or no valid partner)."""
        p = self._cache.get(epoch)
        if p is None:
            p = np.full(len(self.lengths), -1, dtype=np.int64)
            for a, b in self.concat.pairs(self.utterances, epoch):
                if b is not None:
                    p[self.ids[a]] = self.ids[b]
            # the read-ahead loader spans at most two epochs; results are deterministic, so races only recompute
            self._cache = {e: v for e, v in self._cache.items() if e >= epoch - 1} | {epoch: p}
        return p

    def example_lengths(self, epoch: int) -> np.ndarray:
        """Length of each example of ``ids`` in ``epoch`` (first + partner): what the batcher plans with."""
        p = self.partners(epoch)[self.ids]
        return self.lengths[self.ids] + np.where(p >= 0, self.lengths[np.maximum(p, 0)], 0)


class BatchDataset:
    """Reads and collates one batch: (indices, epoch, global batch number g) → numpy batch. Every random choice
    (over-long crop windows, crop offsets, the corruption transform's draws) is seeded by (seed, g).
    With ``pairs`` (training only), index i stands for the example concat(i, its partner in ``epoch``)."""

    def __init__(
        self,
        source,
        cfg: DataConfig,
        seed: int,
        transform: Callable[..., tuple[list[np.ndarray], Any]] | None = None,
        validation: bool = False,
        bucket: int = 0,
        pairs: EpochPairs | None = None,
    ):
        self.source, self.cfg, self.seed = source, cfg, seed
        self.transform, self.validation, self.bucket = transform, validation, bucket
        self.pairs = None if validation else pairs

    def _read(self, i: int, max_n: int, rng: np.random.Generator) -> np.ndarray:
        a = self.source.read(i)
        if a.size > max_n:  # over-long: random window of max_s
            o = int(rng.integers(0, a.size - max_n + 1))
            a = a[o : o + max_n]
        return a

    def load(self, idx: np.ndarray, epoch: int, g: int) -> dict[str, Any]:
        max_n = int(self.cfg.max_s * SAMPLE_RATE)
        rng = np.random.default_rng([self.seed, 7, g])
        partners = self.pairs.partners(epoch) if self.pairs is not None else None
        arrays, used = [], []
        for i in idx.tolist():
            a = self._read(i, max_n, rng)
            if partners is not None:  # dataset-level concatenation (1spk/2spk-concat)
                from curate.corrupt import ConcatTransform

                j = int(partners[i])
                a = ConcatTransform.apply(a, self._read(j, max_n, rng) if j >= 0 else None)
                used.append(j if j >= 0 else None)
            arrays.append(a)
        meta = None
        if self.transform is not None and not self.validation:  # corruption: training batches only
            arrays, meta = self.transform(arrays, epoch, g, False)
        wav, lens, waste = collate(arrays, self.cfg.crop, rng, self.cfg.normalize, self.bucket)
        return {
            "wav": wav,
            "lengths": lens,
            "waste": waste,
            "audio_s": float(lens.sum()) / SAMPLE_RATE,
            "index": g,
            "corruption": meta,
            "partners": used if partners is not None else None,
        }


def build_transforms(cfg: DataConfig, seed: int):
    """``(dataset_transform, batch_transform)`` for ``data.corruption`` (``curate.corrupt.make_transforms``):
    a ``ConcatTransform`` for ``1spk-concat``/``2spk-concat``, a ``CorruptionTransform`` for the collate-time
    conditions, or ``(None, None)`` without corruption."""
    if not cfg.corruption:
        return None, None
    from curate.corrupt import load_condition, make_transforms

    spec = dict(cfg.corruption)
    unknown = set(spec) - {"condition", "sources"}
    if unknown or "condition" not in spec:
        raise ConfigError(f"data.corruption: expected {{condition: NAME, sources: {{...}}}}, got keys {sorted(spec)}")
    return make_transforms(load_condition(spec["condition"]), spec.get("sources"), seed)
