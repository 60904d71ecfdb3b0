"""What every export shares: select → split → write one format → record the selection and a summary.

Each format is a module of :mod:`curate.export` with ``write(ctx: ExportContext) -> dict`` (the files it
wrote and counts). Formats that embed audio (hf, webdataset) cut it per shard with
:func:`curate.export.materialize.segment_audio`, in parallel with Ray or locally; formats that point into the
source recordings (lhotse, nemo, kaldi) copy no audio unless asked to (``materialize=True``: 16 kHz mono FLAC
files, as fairseq always reads). A format module may set ``DEFAULT_SPLIT`` (a :class:`Split`) that replaces a
selection without a split, for trainers that always open a validation set.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate import __version__, manifest
from curate.audio import SAMPLE_RATE
from curate.errors import CurateError
from curate.export.materialize import DEFAULT_SHARD_BYTES, ROW_COLUMNS
from curate.export.select import Selection, select, write_selection
from curate.rundir import RunDir
from curate.rundir import mirror as remote

log = logging.getLogger(__name__)

FORMATS = ("fairseq", "lhotse", "hf", "nemo", "webdataset", "kaldi", "rttm")
EMBEDDED = ("fairseq", "hf", "webdataset")  # always curate's own 16 kHz mono decode
MATERIALIZABLE = ("lhotse", "nemo")  # views into the sources, or materialized FLAC files on request
SPLITS = ("train", "valid")
META_COLUMNS = ROW_COLUMNS  # what every export manifest row carries of a segment


class ExportError(CurateError, RuntimeError):
    """An export cannot be made as asked (unknown format, empty selection, missing package …)."""


@dataclass
class ExportContext:
    run_dir: Path
    variant: str
    out_dir: Path
    segments: pd.DataFrame  # selected rows, sorted by recording and time, with a ``split`` column
    recordings: pd.DataFrame  # recordings.parquet rows of the recordings the segments come from
    runner: str = "local"
    shard_segments: int = 2000  # segments per shard (hf, webdataset)
    options: dict[str, Any] = field(default_factory=dict)
    sample_rate: int | None = SAMPLE_RATE  # lhotse views: resample lazily to this rate (None: native)
    downmix: bool = True  # lhotse views: mix multi-channel sources to mono (False: MultiCuts)
    materialize: bool = False  # lhotse, nemo: point at 16 kHz mono FLAC files cut out once
    shard_bytes: int = DEFAULT_SHARD_BYTES  # webdataset: size limit of a shard

    def advance(self, n: int = 1) -> None:
        """Count ``n`` segments written (the ``on_segments`` progress callback of :func:`export`, if given)."""
        if n and (cb := self.options.get("on_segments")) is not None:
            cb(n)

    def split(self, name: str) -> pd.DataFrame:
        return self.segments[self.segments["split"] == name]

    def splits(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """train always (possibly empty), valid when it has rows."""
        for name in SPLITS:
            part = self.split(name)
            if name == "train" or len(part):
                yield name, part


def clean(v: Any) -> Any:
    """NaN/None → None, numpy scalars → Python."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def meta_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: clean(r.get(k)) for k in META_COLUMNS} for r in df.to_dict("records")]


def has_text(row: dict[str, Any]) -> bool:
    return row.get("text") is not None and bool(str(row["text"]).strip())


def words_ltr(text: str, language: str | None = "en") -> tuple[str, str]:
    """fairseq's ``.wrd`` and ``.ltr`` lines for a transcript, as the thesis prepared them: normalized
    (:func:`curate.w2v2.text.normalize`: 26 letters and the apostrophe, numbers spelled out in the language)
    and upper-cased as ``examples/wav2vec/libri_labels.py``; letters separated by spaces, ``|`` between words
    and at the end. Both are empty when nothing speakable is left."""
    from curate.w2v2.text import normalize

    words = normalize(str(text), language or "en").upper()
    if not words:
        return "", ""
    return words, " ".join(list(words.replace(" ", "|"))) + " |"


def materialized(ctx: ExportContext) -> dict[str, dict[str, Any]]:
    """Cut the selection into 16 kHz mono FLAC files under ``ctx.out_dir`` (resumable; Ray with
    ``runner="ray"``) and return the index rows by segment id (segments of undecodable recordings are absent)."""
    from curate.export.materialize import materialize

    info = materialize(
        ctx.run_dir,
        ctx.variant,
        ctx.out_dir,
        fmt="flac",
        segments=ctx.segments,
        runner=ctx.runner,
        ray_address=ctx.options.get("ray_address"),
        on_plan=ctx.options.get("on_plan"),
        on_unit=ctx.options.get("on_unit"),
    )
    ctx.options["materialize_info"] = info
    rows = manifest.read_table(ctx.out_dir / "index.parquet", "materialized").to_pylist()
    return {r["segment_id"]: r for r in rows}


def shard_units(
    ctx: ExportContext, fn: Callable[[dict[str, Any]], dict[str, Any]], **extra: Any
) -> list[dict[str, Any]]:
    """Cut each split into shards of ``ctx.shard_segments`` and run ``fn`` on each (Ray or local); results in
    shard order."""
    items = []
    for name, part in ctx.splits():
        rows = meta_records(part)
        n = max(1, -(-len(rows) // ctx.shard_segments))
        for i in range(n):
            items.append(
                {
                    "split": name,
                    "shard": i,
                    "num_shards": n,
                    "out_dir": str(ctx.out_dir),
                    "rows": rows[i * ctx.shard_segments : (i + 1) * ctx.shard_segments],
                    **extra,
                }
            )
    if ctx.runner == "ray" and len(items) > 1:
        from curate.runners.ray import map_tasks

        sizes = {(it["split"], it["shard"]): len(it["rows"]) for it in items}
        results = []
        for r in map_tasks(items, fn, num_cpus=1, address=ctx.options.get("ray_address")):
            results.append(r)
            ctx.advance(sizes[r["split"], r["shard"]])  # a task's segments, as it finishes
    else:  # in process: a shard's function counts its segments one by one (``on_segment``)
        results = [fn({**it, "on_segment": ctx.advance}) for it in items]
    return sorted(results, key=lambda r: (SPLITS.index(r["split"]), r["shard"]))


def iter_segment_audio(rows: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """(row, 16 kHz float32 samples) for rows sorted by recording, one recording's ranges at a time."""
    from curate.export.materialize import segment_audio

    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j]["recording_id"] == rows[i]["recording_id"]:
            j += 1
        group = rows[i:j]
        spans = [(r["start_s"], r["end_s"]) for r in group]
        yield from zip(group, segment_audio(group[0]["audio_path"], spans), strict=True)
        i = j


def export(
    run_dir: str | Path,
    variant: str,
    fmt: str,
    out_dir: str | Path,
    selection: Selection | None = None,
    *,
    runner: str = "local",
    shard_segments: int = 2000,
    sample_rate: int | None = SAMPLE_RATE,
    downmix: bool = True,
    materialize: bool = False,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    **options: Any,
) -> dict[str, Any]:
    """Select from ``variant`` of ``run_dir`` and write it in ``fmt`` to ``out_dir``; returns export.json.

    ``sample_rate``/``downmix`` shape lhotse's views (lazily resampled, mixed to mono); ``materialize`` cuts
    lhotse and nemo audio into 16 kHz mono FLAC files first. fairseq, hf and webdataset always hold curate's
    16 kHz mono decode.

    Progress callbacks (``options``): ``on_export(total_segments)`` once the selection is made,
    ``on_segments(n)`` as segments are written; ``on_plan``/``on_unit`` for the materialize step."""
    import dataclasses

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if shard_segments < 1:
        raise ExportError(f"shard_segments must be >= 1, got {shard_segments}")
    if shard_bytes < 1:
        raise ExportError(f"shard_bytes must be >= 1, got {shard_bytes}")
    if sample_rate is not None and sample_rate <= 0:
        raise ExportError(f"sample_rate must be a positive rate in Hz (or None for the native rate), got {sample_rate}")
    if fmt in EMBEDDED and sample_rate not in (None, SAMPLE_RATE):
        raise ExportError(
            f"{fmt} holds curate's {SAMPLE_RATE} Hz mono audio; sample_rate={sample_rate} applies to lhotse"
        )
    if materialize and fmt not in MATERIALIZABLE:
        raise ExportError(f"materialize applies to {', '.join(MATERIALIZABLE)} ({fmt} has its own audio layout)")
    t0 = time.perf_counter()
    sel = selection or Selection()
    module = importlib.import_module(f"curate.export.{fmt}")
    default_split = getattr(module, "DEFAULT_SPLIT", None)
    if default_split is not None and sel.split.method == "none":
        sel = dataclasses.replace(sel, split=default_split)
        log.info("%s: the selection has no split; using split.method=%s", fmt, default_split.method)
    source = str(run_dir) if remote.is_remote(run_dir) else str(Path(run_dir).resolve())
    run_dir, out_dir = remote.local_copy(run_dir), Path(out_dir)  # a run URL: its read-only staging copy
    segments, stats = select(run_dir, variant, sel)
    if segments.empty:
        steps = ", ".join(f"{s['step']}={s['segments']}" for s in stats["steps"])
        raise ExportError(
            f"{run_dir}: the selection '{sel.name}' leaves no segments of variant '{variant}' "
            f"(segments after each step: {steps})"
        )
    recs = manifest.read_table(RunDir(run_dir).recordings, "recordings").to_pandas()
    recs = recs[recs["recording_id"].isin(set(segments["recording_id"]))].sort_values("recording_id")
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = ExportContext(
        run_dir,
        variant,
        out_dir,
        segments,
        recs.reset_index(drop=True),
        runner,
        shard_segments,
        options,
        sample_rate=sample_rate,
        downmix=downmix,
        materialize=materialize,
        shard_bytes=shard_bytes,
    )
    if (on_export := options.get("on_export")) is not None:
        on_export(len(segments))
    result = module.write(ctx)
    write_selection(out_dir, sel, stats)
    info = {
        "format": fmt,
        "run_dir": source,
        "variant": variant,
        "selection": sel.name,
        "curate_version": __version__,
        "segments": {n: len(p) for n, p in ctx.splits()},
        "segments_without_text": {
            n: int((~p["text"].fillna("").str.strip().astype(bool)).sum()) for n, p in ctx.splits()
        },
        "hours": {n: float(p["duration_s"].sum()) / 3600 for n, p in ctx.splits()},
        "seconds": time.perf_counter() - t0,
        **result,
    }
    manifest.write_json(out_dir / "export.json", info)
    log.info("exported %d segments of %s to %s (%s)", len(segments), variant, out_dir, fmt)
    return info


def export_demo(
    run_dir: str | Path, variant: str, out_dir: str | Path, formats: tuple[str, ...] = ("lhotse", "nemo", "fairseq")
) -> dict[str, dict[str, Any]]:
    """The demo's export step: ``variant`` to each format under ``out_dir/<format>`` (a 5 % random validation
    split), locally. Returns {format: export.json}."""
    from curate.export.select import Split

    sel = Selection(name="demo", split=Split(method="random", valid_pct=5))
    return {f: export(run_dir, variant, f, Path(out_dir) / f, sel, runner="local") for f in formats}


__all__ = [
    "FORMATS",
    "ExportContext",
    "ExportError",
    "export",
    "export_demo",
    "has_text",
    "iter_segment_audio",
    "materialized",
    "meta_records",
    "shard_units",
    "words_ltr",
]
