"""fairseq wav2vec 2.0 manifests: ``train.tsv``/``valid.tsv`` (root line, then ``relative/path<TAB>num_samples``),
``.wrd``/``.ltr`` label files line-aligned with them, and the letter dictionary ``dict.ltr.txt``.

fairseq's ``FileAudioDataset`` cannot seek into long files, so the segments are first materialized as
16 kHz FLAC files under the export directory (``audio/<recording_id>/<segment_id>.flac``, with the
materialize ``index.parquet``); that step is resumable and runs on Ray with ``--runner ray``.

Labels are normalized as the thesis did (:func:`curate.export.common.words_ltr`): 26 letters and the
apostrophe, ``|`` between words, numbers spelled out. When every segment of a split has text, ``<split>.wrd``
and ``<split>.ltr`` follow ``<split>.tsv``; when only some have, ``<split>.tsv`` still lists all of them (for
pre-training) and ``<split>_labelled.tsv`` + ``.wrd`` + ``.ltr`` list the labelled ones (for fine-tuning:
``dataset.train_subset=train_labelled``). A selection without a split gets one median-length segment of
every recording as ``valid`` (fairseq always validates).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from curate import manifest
from curate.export.common import ExportContext, materialized, meta_records, words_ltr
from curate.export.select import Split

log = logging.getLogger(__name__)

DEFAULT_SPLIT = Split(method="median_per_recording")
#: fairseq's letter dictionary for wav2vec 2.0 fine-tuning: word boundary, 26 letters, apostrophe
LETTERS = ("|", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "'")


def dictionary(ltr_lines: list[str]) -> str:
    """``dict.ltr.txt`` as fairseq's ``Dictionary.save`` writes it: ``SYMBOL COUNT`` lines, most frequent first;
    every letter of :data:`LETTERS` is listed (count 0 when unseen) so fine-tuned heads share one vocabulary."""
    counts = Counter(tok for line in ltr_lines for tok in line.split())
    order = sorted(LETTERS, key=lambda c: (-counts[c], LETTERS.index(c)))
    return "".join(f"{c} {counts[c]}\n" for c in order)


def _write(ctx: ExportContext, name: str, root: str, rows: list[dict[str, Any]], index: dict) -> None:
    tsv = [root] + [f"{index[r['segment_id']]['shard']}\t{index[r['segment_id']]['num_samples']}" for r in rows]
    manifest.atomic_write_text(ctx.out_dir / f"{name}.tsv", "\n".join(tsv) + "\n")


def write(ctx: ExportContext) -> dict[str, Any]:
    index = materialized(ctx)
    info = ctx.options["materialize_info"]
    root = str(ctx.out_dir.resolve())
    files: list[str] = []
    train_ltr: list[str] = []
    for name, part in ctx.splits():
        rows = [r for r in meta_records(part) if r["segment_id"] in index]  # failed recordings are missing
        _write(ctx, name, root, rows, index)
        files.append(f"{name}.tsv")
        ctx.advance(len(rows))
        labels = {r["segment_id"]: words_ltr(r["text"], r["language"]) for r in rows if r["text"] is not None}
        labelled = [r for r in rows if labels.get(r["segment_id"], ("", ""))[0]]
        if not labelled:
            continue
        stem = name
        if len(labelled) < len(rows):
            stem = f"{name}_labelled"
            log.warning(
                "fairseq: %d of %d %s segments have no text; labels for the others are in %s.tsv/.wrd/.ltr",
                len(rows) - len(labelled),
                len(rows),
                name,
                stem,
            )
            _write(ctx, stem, root, labelled, index)
            files.append(f"{stem}.tsv")
        wrd = [labels[r["segment_id"]][0] for r in labelled]
        ltr = [labels[r["segment_id"]][1] for r in labelled]
        manifest.atomic_write_text(ctx.out_dir / f"{stem}.wrd", "".join(w + "\n" for w in wrd))
        manifest.atomic_write_text(ctx.out_dir / f"{stem}.ltr", "".join(t + "\n" for t in ltr))
        files += [f"{stem}.wrd", f"{stem}.ltr"]
        if name == "train":
            train_ltr = ltr
    if "valid" not in [n for n, _ in ctx.splits()]:  # fairseq always opens valid.tsv
        manifest.atomic_write_text(ctx.out_dir / "valid.tsv", root + "\n")
        files.append("valid.tsv")
        log.warning("fairseq: the selection left no validation segments; valid.tsv is empty")
    if train_ltr:
        manifest.atomic_write_text(ctx.out_dir / "dict.ltr.txt", dictionary(train_ltr))
        files.append("dict.ltr.txt")
    return {"files": files, "materialized_segments": info["segments"], "failed_recordings": info["failed_recordings"]}
