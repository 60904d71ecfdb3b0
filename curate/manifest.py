"""The only Parquet reader/writer of the project.

Every write passes an explicit schema from :mod:`curate.schema`, stamps the schema version into the
Parquet key-value metadata, and is atomic and durable (temp file in the same directory, fsync, ``os.replace``,
fsync of the directory). Files get the mode a plain ``open()`` would give them (0666 minus the umask), so a group-readable umask shares runs.
Readers refuse a file whose schema version differs, with a message that says what to do.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import CurateError
from curate.schema import (
    KIND_KEY,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    SCHEMAS,
    UPGRADABLE,
    Segment,
    segment_from_row,
    to_row,
)

log = logging.getLogger(__name__)
_told: set[str] = set()  # directories already told that they hold an older schema version


class SchemaMismatchError(CurateError, RuntimeError):
    """A manifest was written by another schema version (or is not a curate manifest)."""


def file_mode() -> int:
    """0o666 minus the process umask: the mode ``open(path, "w")`` gives a new file (mkstemp gives 0o600)."""
    try:  # Linux reports the umask without changing it
        with open("/proc/self/status", encoding="ascii") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0o022)  # elsewhere: read it by setting it, and put it straight back
        os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Re-raise an OSError from writing ``path`` as one that names ``path`` (not its temp file, and not nothing:
    pyarrow's "No space left on device" names no file) and keeps its errno, so the CLI can say in one line
    which file could not be written and why."""
    try:
        yield
    except OSError as e:
        code = e.errno
        if code is None:  # pyarrow: "[Errno 28] ..." only in the message
            found = re.search(r"\[errno (\d+)\]", str(e), re.IGNORECASE)
            code = int(found.group(1)) if found else None
        reason = os.strerror(code) if code else str(e)
        raise OSError(code or errno.EIO, reason, str(path)) from e


def _atomic_path(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, file_mode())
    return fd, tmp


def _durable_replace(tmp: str, path: Path) -> None:
    """Move a finished temp file into place so that it survives a crash: its bytes are on disk before the
    rename, and the rename is on disk before we return (a completion marker never names a part that a power
    loss could leave empty)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a platform without directory handles: the rename is as durable as it gets
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    with writing(path):
        fd, tmp = _atomic_path(path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            _durable_replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def to_table(records: Iterable[Any], kind: str) -> pa.Table:
    """Records (dataclasses or dicts) → an Arrow table with the schema of ``kind``."""
    schema = SCHEMAS[kind]
    rows = [r if isinstance(r, dict) else to_row(r) for r in records]
    return pa.Table.from_pylist(rows, schema=schema)


def write_table(path: str | Path, table: pa.Table, kind: str) -> Path:
    """Write ``table`` atomically, cast to the schema of ``kind``, stamped with the schema version."""
    path = Path(path)
    schema = SCHEMAS[kind]
    for f in schema:  # a nullable column an older file lacks (read, then rewritten) is written empty
        if f.name not in table.schema.names and f.nullable:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    if table.schema.names != schema.names:
        table = table.select(schema.names) if set(schema.names) <= set(table.schema.names) else table
    table = table.cast(schema).replace_schema_metadata(
        {SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode(), KIND_KEY: kind.encode()}
    )
    with writing(path):
        fd, tmp = _atomic_path(path)
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression="zstd")
            _durable_replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


class PartWriter:
    """Rows of one ``kind`` appended batch by batch (:func:`writer`)."""

    def __init__(self, pq_writer: pq.ParquetWriter, kind: str, row_group_rows: int | None):
        self._w, self.kind, self._group, self.rows = pq_writer, kind, row_group_rows, 0

    def write(self, rows: pa.Table | Iterable[Any]) -> None:
        """Append an Arrow table or records (dataclasses or dicts)."""
        table = rows if isinstance(rows, pa.Table) else to_table(rows, self.kind)
        schema = SCHEMAS[self.kind]
        if table.schema.names != schema.names:
            table = table.select(schema.names)
        self._w.write_table(table.cast(schema), row_group_size=self._group)
        self.rows += table.num_rows


@contextmanager
def writer(path: str | Path, kind: str, row_group_rows: int | None = None) -> Iterator[PartWriter]:
    """Write one manifest file in batches without holding it all: the file appears (atomically, schema-stamped,
    like :func:`write_table`) when the block ends without an error, and not at all otherwise. ``row_group_rows``:
    at most this many rows per Parquet row group, for readers of a row range (:func:`read_rows`)."""
    path = Path(path)
    schema = SCHEMAS[kind].with_metadata({SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode(), KIND_KEY: kind.encode()})
    with writing(path):
        fd, tmp = _atomic_path(path)
        os.close(fd)
        try:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
                yield PartWriter(w, kind, row_group_rows)
            _durable_replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_rows(path: str | Path, kind: str, start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` of one manifest file, reading only the row groups that hold them."""
    pf = pq.ParquetFile(path)
    _check(Path(path), pf.schema_arrow, kind)
    groups, first, offset = [], None, 0
    for i in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(i).num_rows
        if offset < stop and offset + n > start:
            groups.append(i)
            first = offset if first is None else first
        offset += n
    if not groups:
        return SCHEMAS[kind].empty_table()
    table = pf.read_row_groups(groups)
    return table.slice(start - first, stop - start).replace_schema_metadata(None)


def write_records(path: str | Path, records: Iterable[Any], kind: str) -> Path:
    return write_table(path, to_table(records, kind), kind)


def _check(path: Path, schema: pa.Schema, kind: str) -> int:
    """The file's schema version, after refusing what this curate cannot read."""
    meta = schema.metadata or {}
    found = meta.get(SCHEMA_VERSION_KEY)
    if found is None:
        raise SchemaMismatchError(
            f"{path}: not a curate manifest (no schema version in its Parquet metadata); "
            f"expected a '{kind}' file written by curate schema v{SCHEMA_VERSION}."
        )
    if int(found) != SCHEMA_VERSION and int(found) not in UPGRADABLE.get(kind, ()):
        raise SchemaMismatchError(
            f"{path}: written with curate schema v{int(found)}, this curate reads v{SCHEMA_VERSION}. "
            "Re-run the pipeline with this version (or install the curate version that wrote it)."
        )
    got_kind = meta.get(KIND_KEY, b"").decode()
    if got_kind and got_kind != kind:
        raise SchemaMismatchError(f"{path}: holds '{got_kind}' rows, expected '{kind}'.")
    missing = [c for c in SCHEMAS[kind].names if c not in schema.names]
    if int(found) != SCHEMA_VERSION and missing and str(path.parent) not in _told:
        _told.add(str(path.parent))
        what = "the quality columns" if "music_ratio" in missing else ", ".join(missing)
        log.warning(
            "%s: written with curate schema v%d; read with the v%d columns it lacks (%s) empty. "
            "Re-run the pipeline, or `curate derive` the variant with a clean_* stage, to fill them.",
            path.parent,
            int(found),
            SCHEMA_VERSION,
            what,
        )
    return int(found)


def _read_upgraded(pf: pq.ParquetFile, kind: str, columns: list[str] | None) -> pa.Table:
    """Read an older-version file: the columns it has, then the current schema's missing ones as nulls."""
    schema = SCHEMAS[kind]
    want = columns or schema.names
    have = [c for c in want if c in pf.schema_arrow.names]
    t = pf.read(columns=have)
    for c in want:
        if c not in have:
            t = t.append_column(schema.field(c), pa.nulls(t.num_rows, schema.field(c).type))
    return t.select(want).cast(pa.schema([schema.field(c) for c in want]))


def read_table(path: str | Path, kind: str, columns: list[str] | None = None) -> pa.Table:
    """Read one manifest file or a directory of ``part-*.parquet`` files, checking the schema version."""
    path = Path(path)
    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such manifest")
    tables = []
    for f in files:
        pf = pq.ParquetFile(f)
        if _check(f, pf.schema_arrow, kind) == SCHEMA_VERSION:
            tables.append(pf.read(columns=columns))
        else:
            tables.append(_read_upgraded(pf, kind, columns))
    if not tables:
        schema = SCHEMAS[kind]
        if columns:
            schema = pa.schema([schema.field(c) for c in columns])
        return schema.empty_table()
    return pa.concat_tables(tables).replace_schema_metadata(None)


def iter_batches(path: str | Path, kind: str, batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
    """Stream a manifest (file or directory of parts) in record batches: bounded memory for big runs."""
    path = Path(path)
    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    for f in files:
        pf = pq.ParquetFile(f)
        if _check(f, pf.schema_arrow, kind) == SCHEMA_VERSION:
            yield from pf.iter_batches(batch_size=batch_size)
        else:
            yield from _read_upgraded(pf, kind, None).to_batches(max_chunksize=batch_size)


def read_segments(path: str | Path) -> list[Segment]:
    return [segment_from_row(r) for r in read_table(path, "segments").to_pylist()]


__all__ = [
    "SchemaMismatchError",
    "file_mode",
    "atomic_write_bytes",
    "atomic_write_text",
    "write_json",
    "to_table",
    "write_table",
    "write_records",
    "writer",
    "PartWriter",
    "read_rows",
    "read_table",
    "iter_batches",
    "read_segments",
]
