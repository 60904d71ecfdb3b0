"""One variant's segments filtered, sorted and paged on the server (the page only sees a page), reading only
the columns a request needs (:mod:`.columns`).

Filters mean what :class:`curate.export.select.Predicate` means: a comparison is false on an empty (null) cell
(and a segment without a ``language`` takes its recording's), so a filter here and the same predicate in a
selection YAML keep the same rows. A filtered page reads its filter columns; a sorted page reads its sort column
and, for the first pages of a number or bool column, selects those rows with a partial sort (``np.partition``
then an exact stable sort of the few candidates) instead of ordering a million rows; a deep page, or a text
column, orders the whole column once and keeps the order in the cache. The page's rows come from the row groups
that hold them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.explore.columns import ByteLRU, VariantColumns

COMPARE = ("==", "!=", "<", "<=", ">", ">=")
SETS = ("in", "not in")
NULLS = ("is null", "not null")
CONTAINS = "contains"  # case-insensitive substring of a text column: the page's own, not a selection predicate
OPS = (*COMPARE, *SETS, *NULLS, CONTAINS)
MAX_PAGE = 500
PARTIAL = 10_000  # pages ending before this row of a number sort are found by a partial sort
_PC = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal}


class QueryError(ValueError):
    """A filter or sort the table cannot apply (unknown column, operator or value): the page shows it."""


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: Any = None


def columns_of(table: pa.Table | pa.Schema | Any) -> list[dict[str, str]]:
    """The page's column list (of a schema, or anything with one): name and kind (number, bool, text)."""
    schema = table if isinstance(table, pa.Schema) else table.schema
    out = []
    for f in schema:
        if f.name.startswith("_"):
            continue
        kind = "bool" if pa.types.is_boolean(f.type) else "number" if pa.types.is_floating(f.type) else "text"
        out.append({"name": f.name, "kind": kind})
    return out


def parse_filter(spec: Any, table: pa.Table | pa.Schema | Any) -> Filter:
    """``[column, op, value]`` or ``{column, op, value}`` from the page → a checked :class:`Filter` (``table``:
    the columns' schema, or anything with one)."""
    schema = table if isinstance(table, pa.Schema) else table.schema
    if isinstance(spec, dict):
        spec = [spec.get("column"), spec.get("op"), spec.get("value")]
    if not isinstance(spec, list | tuple) or len(spec) not in (2, 3):
        raise QueryError(f"a filter is [column, op, value], got {spec!r}")
    column, op, value = (*spec, None)[:3]
    names = [c["name"] for c in columns_of(schema)]
    if column not in names:
        raise QueryError(f"no column {column!r}; columns: {', '.join(names)}")
    if op not in OPS:
        raise QueryError(f"unknown operator {op!r}; operators: {', '.join(OPS)}")
    typ = schema.field(column).type
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


def mask_of(col: pa.Array | pa.ChunkedArray, f: Filter) -> np.ndarray:
    """Boolean numpy mask of the rows of ``f.column`` (``col``) that ``f`` keeps (nulls never pass a comparison)."""
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
    """A variant's pages, from the columns each request needs (thread-safe: the server is threaded). ``hours``:
    the variant's hours when known (stats.json), so an unfiltered page reads no column."""

    def __init__(self, columns: VariantColumns, hours: float | None = None) -> None:
        self.name, self.columns, self.schema = columns.name, columns, columns.schema
        self.cache: ByteLRU = columns.cache
        self._hours = hours

    def __len__(self) -> int:
        return self.columns.num_rows

    def to_table(self) -> pa.Table:
        """Every row (every column read): for tests and small variants, never for a page."""
        return self.columns.take(np.arange(len(self)))

    def take(self, idx: np.ndarray) -> pa.Table:
        return self.columns.take(idx)

    def _check_sort(self, column: str) -> None:
        if column not in [c["name"] for c in columns_of(self.schema)]:
            raise QueryError(f"cannot sort by {column!r}: no such column")

    def order(self, column: str, descending: bool) -> np.ndarray:
        """Row numbers of the whole variant sorted by ``column`` (empty cells last, stable), computed once."""
        self._check_sort(column)

        def make() -> np.ndarray:
            order = "descending" if descending else "ascending"
            col = self.columns.column(column)
            return pc.array_sort_indices(col, order=order, null_placement="at_end").to_numpy()

        return self.cache.get((self.name, "order", column, descending), make)

    def _first(self, column: str, descending: bool, m: np.ndarray | None, k: int) -> np.ndarray:
        """The first ``k`` rows passing ``m`` in ``column``'s order, the same rows as ``order(...)[m][:k]``."""
        kept = self.cache.peek((self.name, "order", column, descending))
        typ = self.schema.field(column).type
        if kept is None and k <= PARTIAL and (pa.types.is_floating(typ) or pa.types.is_boolean(typ)):
            # a coarser key than the order (empty and NaN cells all +inf): every row of the first k has a key
            # no greater than the k-th smallest, so those rows, sorted exactly, start with the first k
            rows = np.arange(len(self)) if m is None else np.flatnonzero(m)
            key = self.columns.numpy(column)[rows]  # a copy: negated and NaN-filled in place
            if descending:
                np.negative(key, out=key)
            empty = np.isnan(key)
            if empty.any():
                key[empty] = np.inf
            if k < rows.size:
                rows = rows[key <= np.partition(key, k - 1)[k - 1]]
            order = "descending" if descending else "ascending"
            sub = self.columns.column(column).take(pa.array(rows))
            return rows[pc.array_sort_indices(sub, order=order, null_placement="at_end").to_numpy()][:k]
        idx = self.order(column, descending)
        return (idx if m is None else idx[m[idx]])[:k]

    def mask(self, filters: tuple[Filter, ...]) -> np.ndarray | None:
        """The rows passing every filter (only the filters' columns read), kept in the cache."""
        if not filters:
            return None

        def make() -> np.ndarray:
            m = np.ones(len(self), dtype=bool)
            for f in filters:
                m &= mask_of(self.columns.column(f.column), f)
            return m

        return self.cache.get((self.name, "mask", filters), make)

    def rows(
        self, filters: tuple[Filter, ...] = (), sort: str | None = None, descending: bool = False, k: int | None = None
    ) -> np.ndarray:
        """Row numbers that pass ``filters``, in ``sort`` order (stored order without one); the first ``k``."""
        m = self.mask(filters)
        k = len(self) if k is None else k
        if sort:
            self._check_sort(sort)
            return self._first(sort, descending, m, k)
        return np.arange(min(k, len(self))) if m is None else np.flatnonzero(m)[:k]

    def hours(self, m: np.ndarray | None = None) -> float:
        if m is None and self._hours is not None:
            return self._hours
        d = self.columns.numpy("duration_s")
        if self.columns.column("duration_s").null_count:
            d = np.nan_to_num(d)
        return float(np.sum(d, where=m) if m is not None else np.sum(d)) / 3600.0

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
        needed = [f.column for f in filters] + ([sort] if sort else []) + (["duration_s"] if filters else [])
        self.columns.load(needed)
        m = self.mask(filters)
        total = len(self) if m is None else int(m.sum())
        offset = max(0, min(int(offset), max(total - 1, 0)))
        idx = self.rows(filters, sort, descending, k=offset + limit)[offset:]
        page = self.take(idx).drop_columns(["_rec"])
        return {"total": total, "hours": self.hours(m), "offset": offset, "rows": page.to_pylist()}

    def of_recording(self, recording_id: str) -> pa.Table:
        """This variant's segments of one recording, in time order."""
        t = self.take(self.columns.rows_of(recording_id))
        return t.take(pc.sort_indices(t, sort_keys=[("start_s", "ascending")]))


__all__ = ["OPS", "Filter", "QueryError", "VariantTable", "columns_of", "mask_of", "parse_filter"]
