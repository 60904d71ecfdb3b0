"""Hugging Face ``datasets`` Parquet shards: ``data/<split>-00000-of-0000N.parquet`` with an ``audio`` column
(``Audio`` feature: embedded 16 kHz 16-bit FLAC bytes) and the segment's ids, times and labels.

The features are declared in the Parquet metadata exactly as ``datasets`` writes them, so
``load_dataset("parquet", data_files={"train": "OUT/data/train-*.parquet"})`` gives an ``Audio`` column
offline. Decoding that column (``ds[0]["audio"]``) needs ``torchcodec`` with ``datasets`` >= 4 (``pip install
'curate[export]'`` brings it); ``cast_column("audio", Audio(decode=False))`` gives the FLAC bytes without it.
Shards are written in parallel (one task each), with the shared schema module's discipline: one explicit
Arrow schema per file.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from curate.export.common import META_COLUMNS, ExportContext, ExportError, iter_segment_audio, shard_units

log = logging.getLogger(__name__)
_HF_SPLIT = {"train": "train", "valid": "validation"}
ROW_GROUP = 64


def features_json() -> str:
    try:
        from datasets import Audio, Features, Value
    except ImportError:
        raise ExportError("the hf export needs datasets: pip install 'curate[export]'") from None
    cols = {"audio": Audio(sampling_rate=16000)}
    for c in META_COLUMNS:
        cols[c] = Value("float64") if c.endswith("_s") else Value("string")
    cols["num_samples"] = Value("int64")
    return json.dumps({"info": {"features": Features(cols).to_dict()}})


def _schema(features: str):
    import pyarrow as pa

    fields = [pa.field("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())]))]
    fields += [pa.field(c, pa.float64() if c.endswith("_s") else pa.string()) for c in META_COLUMNS]
    fields.append(pa.field("num_samples", pa.int64()))
    return pa.schema(fields, metadata={"huggingface": features})


def write_shard(item: dict[str, Any]) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.export.materialize import flac_bytes, to_int16

    schema = _schema(item["features"])
    split = _HF_SPLIT[item["split"]]
    path = Path(item["out_dir"]) / "data" / f"{split}-{item['shard']:05d}-of-{item['num_shards']:05d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    rows: list[dict[str, Any]] = []
    n = 0
    # Row groups of ROW_GROUP segments, written as they are cut: bounded memory, and readers can stream.
    with pq.ParquetWriter(tmp, schema) as writer:
        for row, x in iter_segment_audio(item["rows"]):
            pcm = to_int16(x)
            rows.append(
                {
                    "audio": {"bytes": flac_bytes(pcm), "path": f"{row['segment_id']}.flac"},
                    **{c: row[c] for c in META_COLUMNS},
                    "num_samples": int(pcm.size),
                }
            )
            if (on_segment := item.get("on_segment")) is not None:
                on_segment(1)
            if len(rows) == ROW_GROUP:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                n += len(rows)
                rows = []
        if rows or not n:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            n += len(rows)
    tmp.replace(path)
    return {"split": item["split"], "shard": item["shard"], "file": f"data/{path.name}", "segments": n}


def write(ctx: ExportContext) -> dict[str, Any]:
    for old in (ctx.out_dir / "data").glob("*.parquet"):  # an earlier export's shards would be globbed too
        old.unlink()
    results = shard_units(ctx, write_shard, features=features_json())
    if importlib.util.find_spec("torchcodec") is None:
        log.warning("hf: datasets decodes the audio column with torchcodec, which is not installed here")
    return {"files": [r["file"] for r in results]}
