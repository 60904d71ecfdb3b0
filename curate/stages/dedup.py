"""Metadata de-duplication, the thesis heuristic: order by publication time; consecutive broadcasts with
the same normalised title, summary and publication date are one programme aired again. Keep one."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from curate.errors import ConfigError
from curate.registry import register
from curate.stages.base import Aggregate


def normalize_text(value: object) -> str:
    """Lower-case, accents and punctuation removed, whitespace collapsed: 'Het  Journaal!' == 'het journaal'."""
    if not isinstance(value, str):
        return ""
    text = value.lower()
    if not value.isascii():  # ASCII has no accents to strip (and NFKD leaves it as it is)
        text = unicodedata.normalize("NFKD", value)
        text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _groups(d: pd.DataFrame, chunk: int = 50_000) -> np.ndarray:
    """Group numbers (from 1) of rows in order: a new group wherever the normalised title, summary or publication
    date differs from the row before. Keys are compared as they are made, never all held (a big catalog)."""
    group = np.empty(len(d), np.int64)
    prev, g = None, 0
    for start in range(0, len(d), chunk):
        part = d.iloc[start : start + chunk]
        cols = [part[c].to_numpy(dtype=object, na_value=None) for c in ("title", "summary", "published")]
        for i, (title, summary, published) in enumerate(zip(*cols, strict=True), start):
            key = (normalize_text(title), normalize_text(summary), published[:10])
            if key != prev:
                g, prev = g + 1, key
            group[i] = g
    return group


def find_duplicates(df: pd.DataFrame, keep: str = "first") -> pd.DataFrame:
    """Rows to drop: ``recording_id``, ``reason``, ``duplicate_of``. ``df`` needs recording_id, title,
    summary, published, duration_s. Recordings without a publication date are never duplicates."""
    d = df.loc[df["published"].notna(), ["recording_id", "title", "summary", "published", "duration_s"]]
    d = d.sort_values(["published", "recording_id"], kind="stable").reset_index(drop=True)
    # a run of consecutive rows (in publication order) sharing the key is one group
    group = _groups(d)
    many = np.bincount(group)[group] > 1
    d = d[many].assign(_group=group[many])
    if d.empty:
        return pd.DataFrame({"recording_id": [], "reason": [], "duplicate_of": []})
    if keep == "longest":
        idx = (
            d.sort_values(["_group", "duration_s", "published"], ascending=[True, False, True])
            .groupby("_group")
            .head(1)
        )
    else:
        idx = d.groupby("_group").head(1)
    keeper = idx.set_index("_group")["recording_id"]
    d["duplicate_of"] = d["_group"].map(keeper)
    drop = d[d["recording_id"] != d["duplicate_of"]]
    return pd.DataFrame(
        {
            "recording_id": drop["recording_id"].to_numpy(),
            "reason": "rerun: same title, summary and publication date as the preceding broadcast",
            "duplicate_of": drop["duplicate_of"].to_numpy(),
        }
    )


@register("metadata_dedup")
@dataclass
class MetadataDedup(Aggregate):
    keep: str = "first"  # "first" (earliest broadcast) or "longest"
    columns: ClassVar[tuple[str, ...]] = ("recording_id", "title", "summary", "published", "duration_s")

    def validate(self) -> None:
        if self.keep not in ("first", "longest"):
            raise ConfigError(f"metadata_dedup.keep: expected 'first' or 'longest', got {self.keep!r}")

    def drop(self, df: pd.DataFrame) -> pd.DataFrame:
        return find_duplicates(df, self.keep)
