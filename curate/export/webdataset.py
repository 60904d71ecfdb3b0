"""WebDataset tar shards ``<split>-000000.tar``: per segment ``<key>.flac`` (16 kHz, 16-bit) and ``<key>.json``
(ids, source path, times, text, speaker, language). Keys are the segment ids with every ``.`` replaced,
because WebDataset splits a member name at its first dot. Shards are written in parallel (one task each).
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
    from curate.export.materialize import flac_bytes, to_int16

    path = Path(item["out_dir"]) / f"{item['split']}-{item['shard']:06d}.tar"
    tmp = path.with_name(f".{path.name}.tmp")
    n = samples = 0
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for row, x in iter_segment_audio(item["rows"]):
            pcm = to_int16(x)
            key = sample_key(row["segment_id"])
            _add(tar, f"{key}.flac", flac_bytes(pcm))
            meta = {**row, "sample_rate": 16000, "num_samples": int(pcm.size)}
            _add(tar, f"{key}.json", json.dumps(meta, ensure_ascii=False).encode())
            n += 1
            samples += pcm.size
    tmp.replace(path)
    return {"split": item["split"], "shard": item["shard"], "file": path.name, "segments": n, "samples": samples}


def write(ctx: ExportContext) -> dict[str, Any]:
    for old in [*ctx.out_dir.glob("train-*.tar"), *ctx.out_dir.glob("valid-*.tar")]:  # an earlier export's shards
        old.unlink()
    results = shard_units(ctx, write_shard)
    return {"files": [r["file"] for r in results]}
