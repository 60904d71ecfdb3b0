"""Reading a catalog file: CSV/TSV, JSONL or Parquet (each streamed, a chunk of rows at a time), local or an
fsspec URL, into frames of strings (``None`` for empty) with each row's line number and a flag for metadata that was
not UTF-8 (re-read as Windows-1252). Only a catalog that cannot be read at all (or lacks a required column)
is an error."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
import pandas as pd

from curate import audio
from curate.errors import CurateError, one_line

REQUIRED = ("recording_id", "audio_path")


class CatalogError(CurateError, ValueError):
    """The catalog as a whole cannot be used (unreadable, wrong format, required column missing)."""


def clean_column(values: list) -> list:
    """Empty cells (``""`` or only whitespace, NaN, None) are ``None``; everything else as read. One list
    comprehension per column: this runs on every cell of a big catalog."""
    return [
        None if v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and v != v) else v
        for v in values
    ]


def _fix_encoding(value: object) -> tuple[object, bool]:
    """Undo ``surrogateescape`` decoding: bytes that were not UTF-8 are re-read as Windows-1252."""
    if not isinstance(value, str):
        return value, False
    try:
        value.encode("utf-8")
        return value, False
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
        return raw.decode("cp1252", "replace"), True


def _lines(f: BinaryIO, block: int = 1 << 20) -> Iterator[bytes]:
    """The lines of ``f`` as ``bytes.splitlines(keepends=True)`` splits them (at \\r\\n, \\r or \\n), read a block
    at a time: a big catalog is never held whole."""
    buf = b""
    while data := f.read(block):
        buf += data
        pos = 0
        for m in _EOL.finditer(buf):
            if m.end() == len(buf) and m.group() == b"\r":
                break  # maybe the first half of a \r\n split between blocks
            yield buf[pos : m.end()]
            pos = m.end()
        buf = buf[pos:]
    if buf:
        yield buf


_EOL = re.compile(rb"\r\n|\r|\n")


def _read_delimited(path: str | Path, f: BinaryIO, chunk_rows: int, suffix: str = ".csv") -> Iterator[pd.DataFrame]:
    """CSV/TSV with per-line decoding: lines that are not UTF-8 are read as Windows-1252 and their rows
    flagged (``_bad_encoding``), instead of failing the whole catalog. Yields ``chunk_rows`` rows at a time
    (at least one, possibly empty, frame)."""
    bad_lines: set[int] = set()

    def decoded() -> Iterator[str]:
        for i, raw in enumerate(_lines(f), 1):
            try:
                yield raw.decode("utf-8-sig" if i == 1 else "utf-8")
            except UnicodeDecodeError:
                bad_lines.add(i)
                yield raw.decode("cp1252", "replace")

    reader = csv.reader(decoded(), delimiter="\t" if suffix == ".tsv" else ",")
    try:
        header = next(reader)
    except StopIteration:
        raise CatalogError(f"{path}: empty catalog") from None
    records: list[list[str]] = []
    flags: list[bool] = []
    starts: list[int] = []
    prev, yielded = reader.line_num, False
    for rec in reader:
        span = range(prev + 1, reader.line_num + 1)
        prev = reader.line_num
        if not any(f.strip() for f in rec):
            continue
        records.append((rec + [""] * (len(header) - len(rec)))[: len(header)])
        flags.append(any(i in bad_lines for i in span))
        starts.append(span[0])
        if len(records) == chunk_rows:
            frame = _frame(records, header, flags, starts)
            records, flags, starts = [], [], []  # a suspended generator holds only the frame
            yielded = True
            yield frame
    if records or not yielded:  # the last rows, or the one (empty) frame of a catalog without rows
        yield _frame(records, header, flags, starts)


def _frame(records: list[list[str]], header: list[str], flags: list[bool], starts: list[int]) -> pd.DataFrame:
    df = pd.DataFrame(records, columns=header).astype(object)
    df["_bad_encoding_lines"] = flags
    df["_line"] = starts
    return df


def _raw_chunks(path: str | Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The catalog's rows as read, ``chunk_rows`` at a time (at least one, possibly empty, frame); every format
    streams: CSV/TSV and JSONL a block of lines at a time, Parquet a batch of rows at a time."""
    name = PurePosixPath(str(path).split("?", 1)[0])
    suffix = "".join(name.suffixes[-2:]).lower() if name.suffix == ".gz" else name.suffix.lower()
    readers = {".csv": _read_delimited, ".txt": _read_delimited, ".tsv": _read_delimited}
    readers.update({".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".json": _read_jsonl, ".parquet": _read_parquet})
    if suffix not in readers:
        raise CatalogError(f"{path}: unknown catalog format '{suffix}' (use .csv, .tsv, .jsonl or .parquet)")
    with _reading(path), audio.open_binary(path) as f:
        yield from readers[suffix](path, f, chunk_rows, suffix)


def catalog_sha256(path: str | Path) -> str:
    """The SHA-256 of the catalog file's bytes (local or URL): a run is resumed only by the same catalog."""
    import hashlib

    h = hashlib.sha256()
    with _reading(path), audio.open_binary(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _reading(path: str | Path) -> Iterator[None]:
    """Whatever reading the catalog raises (not found, no credentials for its bucket, no backend for its URL
    scheme, not a Parquet file …) as one :class:`CatalogError` line naming the file."""
    try:
        yield
    except CatalogError:
        raise
    except csv.Error as e:
        raise CatalogError(f"{path}: cannot read catalog (Error: {e})") from None
    except (FileNotFoundError, IsADirectoryError):
        raise CatalogError(f"{path}: catalog file not found") from None
    except OSError as e:
        raise CatalogError(f"{path}: cannot read catalog ({type(e).__name__}: {e})") from None
    except Exception as e:  # a Parquet file that is not one, a bucket without credentials, …
        raise CatalogError(f"{path}: cannot read catalog ({type(e).__name__}: {one_line(e, 400)})") from None


def _numbered(df: pd.DataFrame, before: int) -> pd.DataFrame:
    """``_row``: the 1-based number of each row in the whole catalog (``before`` rows came in earlier chunks)."""
    df = df.astype(object)
    df["_row"] = range(before + 1, before + len(df) + 1)
    return df


def _read_jsonl(path: str | Path, f: BinaryIO, chunk_rows: int, suffix: str = ".jsonl") -> Iterator[pd.DataFrame]:
    """One JSON object per line. A chunk's columns are the union over its rows; a field absent from a whole
    chunk is absent from its frame (read as empty, as for a row that lacks it)."""
    rows: list[dict] = []
    before, yielded = 0, False
    for i, raw in enumerate(_lines(f), 1):
        line = raw.decode("utf-8", "surrogateescape")
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise CatalogError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        if len(rows) == chunk_rows:
            frame = _numbered(pd.DataFrame(rows), before)
            before, rows, yielded = before + len(rows), [], True
            yield frame
    if rows or not yielded:
        yield _numbered(pd.DataFrame(rows), before)


def _read_parquet(path: str | Path, f: BinaryIO, chunk_rows: int, suffix: str = ".parquet") -> Iterator[pd.DataFrame]:
    """A row batch at a time, reading one row group at a time (a file written as one big row group is still
    read whole); pandas metadata (e.g. a stored index) applied as ``pandas.read_parquet`` does."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(f, pre_buffer=False)  # one row group at a time, not every column chunk up front
    before, yielded = 0, False
    for batch in pf.iter_batches(batch_size=chunk_rows):
        frame = _numbered(pa.Table.from_batches([batch], schema=pf.schema_arrow).to_pandas(), before)
        before, yielded = before + len(frame), True
        yield frame
    if not yielded:
        yield _numbered(pf.schema_arrow.empty_table().to_pandas(), 0)


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Empty cells → None, non-UTF-8 text re-read as Windows-1252 (flagged in ``_bad_encoding``), ``_row``."""
    pre_bad = df.pop("_bad_encoding_lines") if "_bad_encoding_lines" in df.columns else None
    line = df.pop("_line") if "_line" in df.columns else df.pop("_row")
    bad = np.zeros(len(df), bool) if pre_bad is None else pre_bad.to_numpy(bool).copy()
    columns = {}
    for col in df.columns:
        values = [_empty_none(v) for v in df[col].tolist()]
        for i in [i for i, v in enumerate(values) if isinstance(v, str) and not v.isascii()]:
            values[i], was_bad = _fix_encoding(values[i])
            bad[i] |= was_bad
        columns[col] = pd.Series(values, dtype=object)
    out = pd.DataFrame(columns, columns=df.columns)
    out["_bad_encoding"] = bad
    out["_row"] = line.to_numpy()
    return out


def _empty_none(v: object) -> object:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v) else v


def iter_catalog(path: str | Path, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """The catalog as :func:`read_catalog` reads it, ``chunk_rows`` rows at a time (at least one frame)."""
    path = path if audio.is_url(path) else Path(path)
    for k, df in enumerate(_raw_chunks(path, chunk_rows)):
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing and k == 0:
            found = [c for c in df.columns if c not in ("_bad_encoding_lines", "_line", "_row")]
            raise CatalogError(f"{path}: required column(s) {missing} missing; found columns {found}")
        for c in missing:  # a later JSONL chunk whose rows all lack a field: each row is a MissingField failure
            df[c] = None
        yield _tidy(df.copy())


def read_catalog(path: str | Path) -> pd.DataFrame:
    """Every row as strings (``None`` for empty), plus ``_row`` (1-based line number) and ``_bad_encoding``.
    ``path``: a local file or an fsspec URL."""
    df = pd.concat(list(iter_catalog(path)), ignore_index=True)
    for c in df.select_dtypes(include="object").columns:  # a field some JSONL chunks lack: empty (None), not NaN
        df[c] = df[c].where(df[c].notna(), None)
    return df


__all__ = ["REQUIRED", "CatalogError", "catalog_sha256", "clean_column", "iter_catalog", "read_catalog"]
