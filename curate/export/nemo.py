"""NeMo manifests: JSON lines with ``audio_filepath``, ``offset``, ``duration``, ``text`` (+ curate ids).

Entries point into the source recordings (NeMo's ``offset``/``duration`` read a range), so no audio is
copied. Files: ``train_manifest.jsonl`` and, when the selection has a validation split, ``valid_manifest.jsonl``.
"""

from __future__ import annotations

import json
from typing import Any

from curate import manifest
from curate.export.common import ExportContext, meta_records


def write(ctx: ExportContext) -> dict[str, Any]:
    files = []
    for name, part in ctx.splits():
        lines = []
        for r in meta_records(part):
            entry = {
                "audio_filepath": r["audio_path"],
                "offset": r["start_s"],
                "duration": r["duration_s"],
                "text": r["text"] or "",
                "segment_id": r["segment_id"],
                "recording_id": r["recording_id"],
                "speaker": r["speaker"],
                "lang": r["language"],
            }
            lines.append(json.dumps(entry, ensure_ascii=False))
        path = ctx.out_dir / f"{name}_manifest.jsonl"
        manifest.atomic_write_text(path, "".join(line + "\n" for line in lines))
        files.append(path.name)
    return {"files": files}
