"""NeMo manifests: JSON lines with ``audio_filepath``, ``offset``, ``duration``, ``text`` (+ curate ids).

By default entries point into the source recordings (NeMo's ``offset``/``duration`` read a range) and no audio
is copied; NeMo resamples to the model's ``sample_rate`` and averages channels when it loads them, but seeking
into long compressed programmes (mp3, aac) is slow. With ``materialize=True`` the segments are cut once into
16 kHz mono FLAC files under the export (``audio/…``, resumable, Ray with ``--runner ray``) and entries point
at them with offset 0.

Files: ``train_manifest.jsonl`` and, with a validation split, ``valid_manifest.jsonl``, listing every segment
(``text`` only where the segment has one: NeMo's self-supervised models need none). When some segments of a
split have text and others not, ``<split>_labelled_manifest.jsonl`` lists the labelled ones for ASR training,
so no ASR manifest holds an empty transcript.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from curate import manifest
from curate.audio import SAMPLE_RATE
from curate.export.common import ExportContext, has_text, materialized, meta_records

log = logging.getLogger(__name__)


def _entry(r: dict[str, Any], files: dict[str, dict[str, Any]] | None, root: str) -> dict[str, Any]:
    if files is not None:
        m = files[r["segment_id"]]
        where = {"audio_filepath": f"{root}/{m['shard']}", "offset": 0.0, "duration": m["num_samples"] / SAMPLE_RATE}
    else:
        where = {"audio_filepath": r["audio_path"], "offset": r["start_s"], "duration": r["duration_s"]}
    entry = {**where, **({"text": r["text"]} if has_text(r) else {})}
    entry.update(segment_id=r["segment_id"], recording_id=r["recording_id"], speaker=r["speaker"], lang=r["language"])
    return entry


def _dump(path, entries: list[dict[str, Any]]) -> None:
    manifest.atomic_write_text(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))


def write(ctx: ExportContext) -> dict[str, Any]:
    files = materialized(ctx) if ctx.materialize else None
    if files is None:
        other = ctx.recordings[(ctx.recordings["sample_rate"] != SAMPLE_RATE) | (ctx.recordings["num_channels"] != 1)]
        if len(other):
            log.warning(
                "nemo: %d of %d source recordings are not %d Hz mono; NeMo resamples and downmixes them on every "
                "read (materialize=True / --materialize cuts 16 kHz mono FLAC files once)",
                len(other),
                len(ctx.recordings),
                SAMPLE_RATE,
            )
    root = str(ctx.out_dir.resolve())
    written = []
    for name, part in ctx.splits():
        rows = [r for r in meta_records(part) if files is None or r["segment_id"] in files]
        entries = [_entry(r, files, root) for r in rows]
        _dump(ctx.out_dir / f"{name}_manifest.jsonl", entries)
        ctx.advance(len(entries))
        written.append(f"{name}_manifest.jsonl")
        labelled = [e for e in entries if "text" in e]
        if labelled and len(labelled) < len(entries):
            _dump(ctx.out_dir / f"{name}_labelled_manifest.jsonl", labelled)
            written.append(f"{name}_labelled_manifest.jsonl")
            log.warning(
                "nemo: %d of %d %s segments have no text; ASR training: %s_labelled_manifest.jsonl",
                len(entries) - len(labelled),
                len(entries),
                name,
                name,
            )
    return {"files": written}
