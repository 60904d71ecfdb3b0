"""WebDataset tar shards ``<split>-000000.tar``: per segment ``<key>.flac`` (16 kHz, 16-bit) and ``<key>.json``
(ids, source path, times, text, speaker, language). Keys are the segment ids with every ``.`` replaced,
because WebDataset splits a member name at its first dot.

Shards are closed like ``webdataset.ShardWriter`` closes them: after ``shard_segments`` samples or once
``shard_bytes`` are written, whichever comes first. Tasks write in parallel (one per ``shard_segments``
segments, rolling over to a new file when a size limit is hit); the files are then numbered contiguously so
``train-{000000..000012}.tar`` brace patterns work. Members use the POSIX.1-2001 (pax) tar format, so keys of
any length are stored (the old ustar format stops at 100 characters).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from curate.export.common import ExportContext, iter_segment_audio, shard_units


def sample_key(segment_id: str) -> str:
    return str(segment_id).replace(".", "_").replace("/", "_")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # reproducible shards
    tar.addfile(info, io.BytesIO(data))


def write_shard(item: dict[str, Any]) -> dict[str, Any]:
    """Write one task's rows as ``.<split>-<task>-<k>.tar.part`` files of at most ``shard_bytes`` each."""
    from curate.export.materialize import flac_bytes, to_int16

    out = Path(item["out_dir"])
    parts: list[dict[str, Any]] = []
    tar: tarfile.TarFile | None = None
    try:
        for row, x in iter_segment_audio(item["rows"]):
            if tar is None or tar.offset >= item["shard_bytes"]:  # bytes written so far, as ShardWriter counts
                if tar is not None:
                    tar.close()
                path = out / f".{item['split']}-{item['shard']:06d}-{len(parts):04d}.tar.part"
                tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed above/below
                parts.append({"path": str(path), "segments": 0, "samples": 0})
            pcm = to_int16(x)
            key = sample_key(row["segment_id"])
            _add(tar, f"{key}.flac", flac_bytes(pcm))
            meta = {**row, "sample_rate": 16000, "num_samples": int(pcm.size)}
            _add(tar, f"{key}.json", json.dumps(meta, ensure_ascii=False).encode())
            parts[-1]["segments"] += 1
            parts[-1]["samples"] += int(pcm.size)
            if (on_segment := item.get("on_segment")) is not None:
                on_segment(1)
    finally:
        if tar is not None:
            tar.close()
    return {"split": item["split"], "shard": item["shard"], "parts": parts}


def write(ctx: ExportContext) -> dict[str, Any]:
    for old in [*ctx.out_dir.glob("train-*.tar"), *ctx.out_dir.glob("valid-*.tar"), *ctx.out_dir.glob(".*.tar.part")]:
        old.unlink()  # an earlier export's shards would be globbed too
    results = shard_units(ctx, write_shard, shard_bytes=ctx.shard_bytes)
    files, counts = [], {}
    for r in results:  # in (split, task) order: number the parts contiguously per split
        for part in r["parts"]:
            n = counts.get(r["split"], 0)
            path = ctx.out_dir / f"{r['split']}-{n:06d}.tar"
            Path(part["path"]).replace(path)
            files.append(path.name)
            counts[r["split"]] = n + 1
    return {"files": files, "shards": counts}
