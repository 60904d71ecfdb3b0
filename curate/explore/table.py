"""One variant's segments in memory, filtered, sorted and paged on the server (the page only sees a page).

A variant is read once (every column but ``words``, ``audio_path`` and ``variant``) and joined with its
recordings' ``title`` and ``genre``; a segment without a ``language`` takes its recording's, as
:func:`curate.export.select.load_segments` does, so a filter here and the same predicate in a selection YAML
keep the same rows. Filters mean what :class:`curate.export.select.Predicate` means: a comparison is false
on an empty (null) cell. A sort computes the order of the whole variant once per column and direction and keeps
it; a filtered, sorted page is then that order masked (O(n) numpy), so a million segments answer in
milliseconds after the first sort.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import manifest
from curate.schema import QUALITY_COLUMNS

SKIPPED = ("words", "audio_path", "variant")  # never shipped to the page (heavy, or said elsewhere)
RECORDING_COLUMNS = ("title", "genre")  # joined from recordings.parquet
# the table's first columns (what a curator reads first); the others follow in schema order
SHOWN_FIRST = ("recording_id", "start_s", "duration_s", "speaker", "language", "text", *QUALITY_COLUMNS)
COMPARE = ("==", "!=", "<", "<=", ">", ">=")
SETS = ("in", "not in")
NULLS = ("is null", "not null")
CONTAINS = "contains"  # case-insensitive substring of a text column: the page's own, not a selection predicate
OPS = (*COMPARE, *SETS, *NULLS, CONTAINS)
MAX_PAGE = 500
_PC = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal}


class QueryError(ValueError):
    """A filter or sort the table cannot apply (unknown column, operator or value): the page shows it."""


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: Any = None


def _shaped(seg: pa.Table, recordings: pa.Table) -> pa.Table:
    """Segment rows → the page's columns: :data:`SKIPPED` dropped, :data:`SHOWN_FIRST` first, the recording's
    ``title`` and ``genre`` joined, its ``language`` for an unlabelled segment, and ``_rec`` (its row in
    ``recordings``)."""
    from curate.schema import SEGMENT_SCHEMA

    columns = [n for n in SEGMENT_SCHEMA.names if n not in SKIPPED]
    for c in columns:  # a v1 file read by row groups lacks the quality columns
        if c not in seg.column_names:
            seg = seg.append_column(SEGMENT_SCHEMA.field(c), pa.nulls(seg.num_rows, SEGMENT_SCHEMA.field(c).type))
    seg = seg.select(sorted(columns, key=lambda c: SHOWN_FIRST.index(c) if c in SHOWN_FIRST else len(SHOWN_FIRST)))
    rec = pc.index_in(seg.column("recording_id"), value_set=recordings.column("recording_id"))
    lang = pc.coalesce(seg.column("language"), recordings.column("language").take(rec))
    seg = seg.set_column(seg.schema.get_field_index("language"), "language", lang)
    for c in RECORDING_COLUMNS:
        seg = seg.append_column(c, recordings.column(c).take(rec))
    return seg.append_column("_rec", pc.fill_null(rec, -1).cast(pa.int32()))


def read_variant(variant_dir: Any, recordings: pa.Table) -> pa.Table:
    """A variant's segments as the page shows them (:func:`_shaped`), read whole."""
    from curate.schema import SEGMENT_SCHEMA

    columns = [n for n in SEGMENT_SCHEMA.names if n not in SKIPPED]
    return _shaped(manifest.read_table(variant_dir, "segments", columns=columns), recordings)


def read_page(variant_dir: Any, recordings: pa.Table, offset: int, limit: int) -> tuple[pa.Table, int]:
    """Rows ``[offset, offset + limit)`` of a variant in stored order and its row count, reading only the row
    groups that hold them: the first page of a million segments before the variant is in memory."""
    counts = manifest.row_counts(variant_dir, "segments")
    total = sum(n for _, n in counts)
    offset = max(0, min(offset, max(total - 1, 0)))
    parts, start = [], 0
    for f, n in counts:
        a, b = max(offset, start), min(offset + limit, start + n)
        if a < b:
            parts.append(manifest.read_rows(f, "segments", a - start, b - start).drop_columns(list(SKIPPED)))
        start += n
    if not parts:
        return _shaped(manifest.read_table(variant_dir, "segments").slice(0, 0), recordings), total
    return _shaped(pa.concat_tables(parts, promote_options="default"), recordings), total


def columns_of(table: pa.Table) -> list[dict[str, str]]:
    """The page's column list: name and kind (number, bool, text)."""
    out = []
    for f in table.schema:
        if f.name.startswith("_"):
            continue
        kind = "bool" if pa.types.is_boolean(f.type) else "number" if pa.types.is_floating(f.type) else "text"
        out.append({"name": f.name, "kind": kind})
    return out


def parse_filter(spec: Any, table: pa.Table) -> Filter:
    """``[column, op, value]`` or ``{column, op, value}`` from the page → a checked :class:`Filter`."""
    if isinstance(spec, dict):
        spec = [spec.get("column"), spec.get("op"), spec.get("value")]
    if not isinstance(spec, list | tuple) or len(spec) not in (2, 3):
        raise QueryError(f"a filter is [column, op, value], got {spec!r}")
    column, op, value = (*spec, None)[:3]
    names = [c["name"] for c in columns_of(table)]
    if column not in names:
        raise QueryError(f"no column {column!r}; columns: {', '.join(names)}")
    if op not in OPS:
        raise QueryError(f"unknown operator {op!r}; operators: {', '.join(OPS)}")
    typ = table.schema.field(column).type
    if op in NULLS:
        return Filter(column, op)
    if op == CONTAINS:
        if not pa.types.is_string(typ) or not isinstance(value, str):
            raise QueryError(f"'contains' needs a text column and a text value, got {column} {value!r}")
        return Filter(column, op, value)
    values = value if op in SETS else [value]
    if not isinstance(values, list) or not values:
        raise QueryError(f"'{op}' needs a list of values, got {value!r}")
    try:
        if pa.types.is_floating(typ):
            values = [float(v) for v in values]
        elif pa.types.is_boolean(typ):
            values = [v if isinstance(v, bool) else str(v).lower() in ("true", "1", "yes") for v in values]
        else:
            values = [str(v) for v in values]
    except (TypeError, ValueError):
        raise QueryError(f"{column} {op}: {value!r} is not a {typ}") from None
    return Filter(column, op, tuple(values) if op in SETS else values[0])  # hashable: masks are cached by filter


def mask_of(table: pa.Table, f: Filter) -> np.ndarray:
    """Boolean numpy mask of the rows ``f`` keeps (nulls never pass a comparison)."""
    col = table.column(f.column)
    if f.op == "is null":
        m = pc.is_null(col)
    elif f.op == "not null":
        m = pc.is_valid(col)
    elif f.op == CONTAINS:
        m = pc.match_substring(col, f.value, ignore_case=True)
    elif f.op in SETS:
        hit = pc.is_in(col, value_set=pa.array(list(f.value), col.type))
        m = hit if f.op == "in" else pc.and_(pc.invert(hit), pc.is_valid(col))
    else:
        m = _PC[f.op](col, pa.scalar(f.value, col.type))
    return pc.fill_null(m, False).to_numpy(zero_copy_only=False)


class VariantTable:
    """A variant's rows with cached sort orders and filter masks (thread-safe: the server is threaded)."""

    def __init__(self, name: str, table: pa.Table) -> None:
        self.name, self.table = name, table
        self.rec = table.column("_rec").to_numpy()
        self._orders: dict[tuple[str, bool], np.ndarray] = {}
        self._masks: OrderedDict[tuple[Filter, ...], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.table.num_rows

    def order(self, column: str, descending: bool) -> np.ndarray:
        """Row numbers of the whole variant sorted by ``column`` (empty cells last), computed once."""
        key = (column, descending)
        with self._lock:
            got = self._orders.get(key)
        if got is None:
            if column not in [c["name"] for c in columns_of(self.table)]:
                raise QueryError(f"cannot sort by {column!r}: no such column")
            order = "descending" if descending else "ascending"
            idx = pc.sort_indices(self.table.select([column]), sort_keys=[(column, order, "at_end")])
            got = idx.to_numpy()
            with self._lock:
                self._orders[key] = got
        return got

    def mask(self, filters: tuple[Filter, ...]) -> np.ndarray | None:
        if not filters:
            return None
        with self._lock:
            got = self._masks.get(filters)
            if got is not None:
                self._masks.move_to_end(filters)
                return got
        m = np.ones(len(self), dtype=bool)
        for f in filters:
            m &= mask_of(self.table, f)
        with self._lock:
            self._masks[filters] = m
            while len(self._masks) > 16:
                self._masks.popitem(last=False)
        return m

    def rows(self, filters: tuple[Filter, ...] = (), sort: str | None = None, descending: bool = False) -> np.ndarray:
        """Row numbers that pass ``filters``, in ``sort`` order (stored order without one)."""
        m = self.mask(filters)
        if sort:
            idx = self.order(sort, descending)
            return idx if m is None else idx[m[idx]]
        return np.arange(len(self)) if m is None else np.flatnonzero(m)

    def page(
        self,
        filters: tuple[Filter, ...] = (),
        sort: str | None = None,
        descending: bool = False,
        offset: int = 0,
        limit: int = 50,
    ) -> dict[str, Any]:
        """One page: ``total`` rows pass, their hours, and ``rows`` (dicts) ``[offset, offset + limit)``."""
        limit = max(1, min(int(limit), MAX_PAGE))
        idx = self.rows(filters, sort, descending)
        offset = max(0, min(int(offset), max(len(idx) - 1, 0)))
        page = self.table.take(pa.array(idx[offset : offset + limit], pa.int64())).drop_columns(["_rec"])
        if len(idx) == len(self):
            hours = pc.sum(self.table.column("duration_s")).as_py() or 0.0
        else:
            hours = float(self.table.column("duration_s").to_numpy()[idx].sum())
        return {"total": int(len(idx)), "hours": hours / 3600.0, "offset": offset, "rows": page.to_pylist()}

    def of_recording(self, rec_row: int) -> pa.Table:
        """This variant's segments of one recording (by its row in recordings.parquet), in time order."""
        t = self.table.take(pa.array(np.flatnonzero(self.rec == rec_row), pa.int64()))
        return t.take(pc.sort_indices(t, sort_keys=[("start_s", "ascending")]))


__all__ = ["OPS", "Filter", "QueryError", "VariantTable", "columns_of", "mask_of", "parse_filter", "read_variant"]
