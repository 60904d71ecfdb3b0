"""fairseq wav2vec 2.0 manifests: ``train.tsv``/``valid.tsv`` (root line, then ``relative/path<TAB>num_samples``)
and, when every segment has text, ``.wrd``/``.ltr`` label files line-aligned with them.

fairseq's ``FileAudioDataset`` cannot seek into long files, so the segments are first materialized as
16 kHz FLAC files under the export directory (``audio/<recording_id>/<segment_id>.flac``, with the
materialize ``index.parquet``); that step is resumable and runs on Ray with ``--runner ray``.
"""

from __future__ import annotations

import logging
from typing import Any

from curate import manifest
from curate.export.common import ExportContext, meta_records, words_ltr

log = logging.getLogger(__name__)


def write(ctx: ExportContext) -> dict[str, Any]:
    from curate.export.materialize import materialize

    info = materialize(
        ctx.run_dir,
        ctx.variant,
        ctx.out_dir,
        fmt="flac",
        segments=ctx.segments,
        runner=ctx.runner,
        on_plan=ctx.options.get("on_plan"),
        on_unit=ctx.options.get("on_unit"),
    )
    index = {r["segment_id"]: r for r in manifest.read_table(ctx.out_dir / "index.parquet", "materialized").to_pylist()}
    root = str(ctx.out_dir.resolve())
    files = []
    for name, part in ctx.splits():
        rows = [r for r in meta_records(part) if r["segment_id"] in index]  # failed recordings are missing
        tsv = [root] + [f"{index[r['segment_id']]['shard']}\t{index[r['segment_id']]['num_samples']}" for r in rows]
        manifest.atomic_write_text(ctx.out_dir / f"{name}.tsv", "\n".join(tsv) + "\n")
        files.append(f"{name}.tsv")
        texts = [r["text"] for r in rows]
        if rows and all(t is not None for t in texts):
            labels = [words_ltr(t) for t in texts]
            manifest.atomic_write_text(ctx.out_dir / f"{name}.wrd", "".join(w + "\n" for w, _ in labels))
            manifest.atomic_write_text(ctx.out_dir / f"{name}.ltr", "".join(ltr + "\n" for _, ltr in labels))
            files += [f"{name}.wrd", f"{name}.ltr"]
        elif any(t is not None for t in texts):
            log.warning("fairseq: some %s segments have no text: no .wrd/.ltr labels written", name)
    if "valid" not in [n for n, _ in ctx.splits()]:  # fairseq always opens valid.tsv
        manifest.atomic_write_text(ctx.out_dir / "valid.tsv", root + "\n")
        files.append("valid.tsv")
    return {"files": files, "materialized_segments": info["segments"], "failed_recordings": info["failed_recordings"]}
