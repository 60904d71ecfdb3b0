"""Metadata de-duplication, the thesis heuristic: order by publication time; consecutive broadcasts with
the same normalised title, summary and publication date are one programme aired again. Keep one."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import ClassVar

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


def find_duplicates(df: pd.DataFrame, keep: str = "first") -> pd.DataFrame:
    """Rows to drop: ``recording_id``, ``reason``, ``duplicate_of``. ``df`` needs recording_id, title,
    summary, published, duration_s. Recordings without a publication date are never duplicates."""
    d = df[["recording_id", "title", "summary", "published", "duration_s"]].copy()
    d = d[d["published"].notna()]
    d["_key"] = (
        d["title"].map(normalize_text) + "\x1f" + d["summary"].map(normalize_text) + "\x1f" + d["published"].str[:10]
    )
    d = d.sort_values(["published", "recording_id"], kind="stable").reset_index(drop=True)
    # a run of consecutive rows (in publication order) sharing the key is one group
    group = (d["_key"] != d["_key"].shift()).cumsum()
    d["_group"] = group
    sizes = d.groupby("_group")["recording_id"].transform("size")
    d = d[sizes > 1]
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
