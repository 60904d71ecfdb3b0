"""A variant's Parquet files read column by column and row group by row group, never whole.

A request reads what it needs: a filter or a sort its columns (one column of a million rows is about 0.1 s of
CPU), a page its rows, from the row groups that hold them (:meth:`VariantColumns.take`). Columns read are kept in
one :class:`ByteLRU` per server, bounded in bytes, so the memory held does not grow with the number of variants
or columns asked. The page's columns (:func:`shaped_schema`) are the segment schema's without :data:`SKIPPED`,
:data:`SHOWN_FIRST` first, with the recording's ``title`` and ``genre`` and ``_rec`` (its row in
``recordings.parquet``); a segment without a ``language`` takes its recording's, as
:func:`curate.export.select.load_segments` does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import manifest
from curate.schema import QUALITY_COLUMNS, SEGMENT_SCHEMA

SKIPPED = ("words", "audio_path", "variant")  # never shipped to the page (heavy, or said elsewhere)
RECORDING_COLUMNS = ("title", "genre")  # joined from recordings.parquet
# the table's first columns (what a curator reads first); the others follow in schema order
SHOWN_FIRST = ("recording_id", "start_s", "duration_s", "speaker", "language", "text", *QUALITY_COLUMNS)
STORED = [n for n in SEGMENT_SCHEMA.names if n not in SKIPPED]  # the columns read from the variant's files
CACHE_BYTES = 512 * 2**20  # columns, sort orders and filter masks kept, all variants together
# a page whose row groups hold more than this share of the variant (and more than WHOLE_MIN rows) reads whole
# columns instead, kept for the next pages; a small variant is read in one call
WHOLE_READ, WHOLE_MIN = 0.25, 100_000


def shaped_schema(recordings: pa.Schema) -> pa.Schema:
    """The page's columns, in the page's order (no data read)."""
    stored = sorted(STORED, key=lambda c: SHOWN_FIRST.index(c) if c in SHOWN_FIRST else len(SHOWN_FIRST))
    fields = [SEGMENT_SCHEMA.field(c) for c in stored] + [recordings.field(c) for c in RECORDING_COLUMNS]
    return pa.schema([*fields, pa.field("_rec", pa.int32())])


def rec_rows(recording_id: pa.Array | pa.ChunkedArray, recordings: pa.Table) -> pa.Array:
    """Each segment's row in ``recordings`` (null for a recording the run does not list)."""
    return pc.index_in(recording_id, value_set=recordings.column("recording_id"))


def shaped(seg: pa.Table, recordings: pa.Table) -> pa.Table:
    """Stored segment rows → the page's rows (:func:`shaped_schema`); a column an older file lacks is empty."""
    schema = shaped_schema(recordings.schema)
    rec = rec_rows(seg.column("recording_id"), recordings)
    cols = []
    for f in schema:
        if f.name == "_rec":
            cols.append(pc.fill_null(rec, -1).cast(pa.int32()))
        elif f.name in RECORDING_COLUMNS:
            cols.append(recordings.column(f.name).take(rec))
        elif f.name not in seg.column_names:
            cols.append(pa.nulls(seg.num_rows, f.type))
        elif f.name == "language":
            cols.append(pc.coalesce(seg.column("language"), recordings.column("language").take(rec)))
        else:
            cols.append(seg.column(f.name).cast(f.type))
    return pa.table(cols, schema=schema)


class ByteLRU:
    """Values kept by key, least recently used dropped first once their bytes pass ``budget`` (thread-safe)."""

    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self.budget, self.used = budget, 0
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The value for ``key``; ``make()`` (outside the lock) when it is not kept."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        value = make()
        size = _nbytes(value)
        with self._lock:
            if key not in self._items:
                self._items[key] = (value, size)
                self.used += size
            while self.used > self.budget and len(self._items) > 1:
                _, (_, n) = self._items.popitem(last=False)
                self.used -= n
        return value

    def peek(self, key: Any) -> Any:
        with self._lock:
            got = self._items.get(key)
            return None if got is None else got[0]


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray | pa.Array | pa.ChunkedArray | pa.Table):
        return int(value.nbytes)
    return 64


class VariantColumns:
    """One variant's files, read by column (:meth:`column`) or by rows (:meth:`take`); footers parsed once."""

    def __init__(self, name: str, variant_dir: Path, recordings: pa.Table, cache: ByteLRU) -> None:
        self.name, self.recordings, self.cache = name, recordings, cache
        opened = manifest.open_parts(variant_dir, "segments")
        self.paths, self.parts = [f for f, _ in opened], [pf for _, pf in opened]  # parts: footers (metadata)
        counts = [pf.metadata.num_rows for pf in self.parts]
        self.file_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.num_rows = int(self.file_start[-1])
        self.schema = shaped_schema(recordings.schema)
        # each row group's first row, over the whole variant, and its (file, group) numbers
        starts, self.groups = [], []
        for i, pf in enumerate(self.parts):
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
            starts.append(self.file_start[i] + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64))
            self.groups += [(i, g) for g in range(len(sizes))]
        self.group_start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self._leaf: dict[int, int] = {}  # each file's Parquet column number of recording_id

    def _reader(self, i: int) -> pq.ParquetFile:
        """A reader of file ``i`` of its own (requests run in threads; a reader is not shared), from the footer
        already parsed (0.3 ms)."""
        return pq.ParquetFile(self.paths[i], metadata=self.parts[i].metadata, pre_buffer=False)

    def _stored(self, name: str) -> pa.Array:
        return self._read([name])[name]

    def _read(self, names: list[str]) -> dict[str, pa.Array]:
        """Stored columns of every file, each as one array (null where an older file lacks it), read together."""
        parts: dict[str, list[pa.Array]] = {n: [] for n in names}
        for i, pf in enumerate(self.parts):
            have = [n for n in names if n in pf.schema_arrow.names]
            t = self._reader(i).read(columns=have, use_threads=True) if have else None
            for n in names:
                typ = SEGMENT_SCHEMA.field(n).type
                if n not in have:
                    parts[n].append(pa.nulls(pf.metadata.num_rows, typ))
                else:  # one array per file (a chunk per row group costs a Python object each below)
                    col = t.column(n)
                    parts[n].append((col if col.type == typ else col.cast(typ)).combine_chunks())
        out = {}
        for n, p in parts.items():
            typ = SEGMENT_SCHEMA.field(n).type
            out[n] = p[0] if len(p) == 1 else pa.concat_arrays(p) if p else pa.array([], typ)
        return out

    def load(self, names: list[str]) -> None:
        """Read the columns of ``names`` not yet kept, in one pass over the files (columns decode in parallel),
        so a request needing several columns waits for the slowest, not for their sum."""
        todo = [n for n in dict.fromkeys(names) if self.cache.peek((self.name, "column", n)) is None]
        stored = [n for n in todo if n in STORED]
        need_rec = any(n in ("_rec", "language", *RECORDING_COLUMNS) for n in todo)
        need_rec = need_rec and self.cache.peek((self.name, "rec", None)) is None
        raw = list(dict.fromkeys(stored + (["recording_id"] if need_rec else [])))
        if len(raw) < 2:
            return  # one column: read as it is asked
        got = self._read(raw)
        if need_rec:
            self.cache.get((self.name, "rec", None), lambda: rec_rows(got["recording_id"], self.recordings))
        for n in todo:
            self.cache.get((self.name, "column", n), lambda n=n: self._make_column(n, got.get(n)))

    def column(self, name: str) -> pa.Array:
        """A column of the page (:func:`shaped_schema`), read on first use and kept in the cache."""
        return self.cache.get((self.name, "column", name), lambda: self._make_column(name))

    def _make_column(self, name: str, stored: pa.Array | None = None) -> pa.Array:
        """``name`` from its stored column (read unless given) and the recordings."""
        if name == "_rec":
            return pc.fill_null(self._rec(), -1).cast(pa.int32())
        if name in RECORDING_COLUMNS:
            return self.recordings.column(name).take(self._rec()).combine_chunks()
        own = stored if stored is not None else self._stored(name)
        if name == "language":
            return pc.coalesce(own, self.recordings.column("language").take(self._rec()).combine_chunks())
        return own

    def _rec(self) -> pa.Array:
        return self.cache.get((self.name, "rec", None), lambda: rec_rows(self._stored("recording_id"), self.recordings))

    def numpy(self, name: str) -> np.ndarray:
        """A number or bool column as float64 (NaN where empty)."""
        col = self.column(name)
        if pa.types.is_boolean(col.type):
            col = col.cast(pa.float64())
        return col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)

    def rows_of(self, recording_id: str) -> np.ndarray:
        """Row numbers of one recording's segments, reading ``recording_id`` only from the row groups whose
        min/max statistics can hold it (a run writes a recording's segments together: a few groups of many), or
        from the kept ``_rec`` column."""
        sizes = np.diff(np.append(self.group_start, self.num_rows))
        if self.cache.peek((self.name, "rec", None)) is not None:
            ids = self.recordings.column("recording_id")
            row = pc.index(ids, recording_id).as_py()
            return np.flatnonzero(self.column("_rec").to_numpy() == row) if row >= 0 else np.zeros(0, np.int64)
        maybe = np.array([k for k, (i, g) in enumerate(self.groups) if self._may_hold(i, g, recording_id)], np.int64)
        out = []
        for i in range(len(self.parts)):
            mine = maybe[[self.groups[k][0] == i for k in maybe]] if maybe.size else maybe
            if not mine.size:
                continue
            groups = [self.groups[k][1] for k in mine]
            col = self._reader(i).read_row_groups(groups, columns=["recording_id"]).column(0)
            hit = np.flatnonzero(pc.equal(col, recording_id).to_numpy(zero_copy_only=False))
            # a hit's row number: the start of its group plus its place in it
            ends = np.cumsum(sizes[mine])
            at = np.searchsorted(ends, hit, side="right")
            out.append(self.group_start[mine][at] + hit - np.concatenate([[0], ends[:-1]])[at])
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def _may_hold(self, i: int, g: int, value: str) -> bool:
        meta = self.parts[i].metadata
        if i not in self._leaf:
            self._leaf[i] = [meta.schema.column(j).path for j in range(meta.num_columns)].index("recording_id")
        stats = meta.row_group(g).column(self._leaf[i]).statistics
        if stats is None or not stats.has_min_max:
            return True
        return stats.min <= value <= stats.max

    def take(self, idx: np.ndarray) -> pa.Table:
        """The page's rows ``idx`` (row numbers of the variant, in that order), reading only the row groups that
        hold them; when those are most of the variant, from whole (cached) columns instead."""
        idx = np.asarray(idx, dtype=np.int64)
        if not idx.size:
            return self.schema.empty_table()
        rows, where = np.unique(idx, return_inverse=True)
        g = np.searchsorted(self.group_start, rows, side="right") - 1
        wanted = np.unique(g)
        sizes = np.diff(np.append(self.group_start, self.num_rows))
        if sizes[wanted].sum() > max(WHOLE_READ * self.num_rows, WHOLE_MIN):
            positions = pa.array(idx)
            self.load(self.schema.names)
            return pa.table([self.column(f.name).take(positions) for f in self.schema], schema=self.schema)
        # columns already kept are taken from the cache; the others are read from the rows' row groups
        kept = {c: col for c in STORED if (col := self.cache.peek((self.name, "column", c))) is not None}
        kept.pop("language", None)  # the kept language is the page's (with the recording's), not the stored one
        parts, base = [], {}
        read = 0
        for i, pf in enumerate(self.parts):
            mine = [self.groups[k][1] for k in wanted if self.groups[k][0] == i]
            if not mine:
                continue
            have = [c for c in STORED if c in pf.schema_arrow.names and c not in kept]
            t = self._reader(i).read_row_groups(mine, columns=have, use_threads=True)
            for k in wanted:
                if self.groups[k][0] == i:
                    base[k] = read
                    read += int(sizes[k])
            parts.append(t.replace_schema_metadata(None))
        table = pa.concat_tables(parts, promote_options="default")
        local = np.array([base[k] for k in g], dtype=np.int64) + (rows - self.group_start[g])
        table = table.take(pa.array(local[where]))
        positions = pa.array(idx)
        for c, col in kept.items():
            table = table.append_column(SEGMENT_SCHEMA.field(c), col.take(positions))
        return shaped(table, self.recordings)


__all__ = ["ByteLRU", "VariantColumns", "shaped", "shaped_schema"]
