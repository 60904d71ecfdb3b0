"""Metadata filters and de-duplication: every drop has a stage and a reason."""

import pandas as pd
import pytest

from curate.config import parse_pipeline
from curate.errors import ConfigError
from curate.stages.dedup import find_duplicates, normalize_text
from curate.stages.filters import ColumnFilter, DateFilter, DurationFilter, GenreFilter
from curate.testing.oracle import apply_filters


def table(rows):
    base = {
        "title": None,
        "summary": None,
        "genre": None,
        "published": None,
        "language": None,
        "metadata": None,
        "duration_s": 600.0,
    }
    return pd.DataFrame([{**base, **r} for r in rows])


@pytest.mark.parametrize(
    ("stage", "row", "reason"),
    [
        (GenreFilter(deny=["Music"]), {"genre": "music"}, "genre 'music' denied"),
        (GenreFilter(deny=["music"]), {"genre": " MUSIC "}, "denied"),
        (GenreFilter(deny=["music"]), {"genre": "news"}, None),
        (GenreFilter(allow=["news"]), {"genre": "sport"}, "not in allow list"),
        (GenreFilter(allow=["news"]), {"genre": None}, None),
        (GenreFilter(allow=["news"], keep_missing=False), {"genre": None}, "genre missing"),
        (DurationFilter(), {"duration_s": 3 * 3600 + 1}, "> max 10800 s"),
        (DurationFilter(), {"duration_s": 3 * 3600}, None),
        (DurationFilter(min_s=60), {"duration_s": 59}, "< min 60 s"),
        (DateFilter(start="2020-01-01"), {"published": "2019-12-31T23:00:00"}, "before 2020-01-01"),
        (DateFilter(end="2020-01-01"), {"published": "2020-01-01T23:00:00"}, None),
        (DateFilter(end="2020-01-01", keep_missing=False), {"published": None}, "missing"),
        (ColumnFilter(column="language", equals="nl"), {"language": "en"}, "fails language == 'nl'"),
        (ColumnFilter(column="language", isin=["nl", "en"]), {"language": "en"}, None),
        (
            ColumnFilter(column="title", regex="(?i)herhaling", drop_matching=True),
            {"title": "Nieuws (HERHALING)"},
            "matches title",
        ),
        (ColumnFilter(column="channel", equals="NPO1"), {"metadata": '{"channel": "NPO2"}'}, "fails channel"),
    ],
)
def test_filter_table(stage, row, reason):
    got = stage.reasons(table([{"recording_id": "r", **row}])).iloc[0]
    if reason is None:
        assert got is None
    else:
        assert reason in got


def test_invalid_filter_params_are_config_errors():
    raw = {"name": "x", "filters": [{"stage": "genre_filter", "allow": ["a"], "deny": ["A"]}]}
    with pytest.raises(ConfigError, match="both allowed and denied"):
        parse_pipeline(raw)
    with pytest.raises(ConfigError, match="exactly one of"):
        parse_pipeline({"name": "x", "filters": [{"stage": "column_filter", "column": "a"}]})


def test_normalize_text():
    assert normalize_text("  Het   Journaal! ") == normalize_text("het journaal")
    assert normalize_text("Café") == "cafe"


def test_dedup_consecutive_reruns_keep_first_or_longest():
    rows = [
        {
            "recording_id": "a",
            "title": "Journaal",
            "summary": "Nieuws",
            "published": "2020-01-01T08:00:00",
            "duration_s": 600,
        },
        {
            "recording_id": "b",
            "title": "journaal ",
            "summary": "nieuws.",
            "published": "2020-01-01T12:00:00",
            "duration_s": 700,
        },
        {
            "recording_id": "c",
            "title": "Journaal",
            "summary": "Nieuws",
            "published": "2020-01-02T08:00:00",
            "duration_s": 600,
        },
        {"recording_id": "d", "title": "Sport", "summary": "x", "published": "2020-01-02T09:00:00", "duration_s": 600},
        {"recording_id": "e", "title": "Sport", "summary": "x", "published": None, "duration_s": 600},
    ]
    first = find_duplicates(table(rows), "first")
    assert first[["recording_id", "duplicate_of"]].values.tolist() == [["b", "a"]]
    longest = find_duplicates(table(rows), "longest")
    assert longest[["recording_id", "duplicate_of"]].values.tolist() == [["a", "b"]]


def test_dedup_needs_consecutive_broadcasts():
    rows = [
        {"recording_id": "a", "title": "Journaal", "summary": "N", "published": "2020-01-01T08:00:00"},
        {"recording_id": "x", "title": "Weer", "summary": "W", "published": "2020-01-01T09:00:00"},
        {"recording_id": "b", "title": "Journaal", "summary": "N", "published": "2020-01-01T12:00:00"},
    ]
    assert find_duplicates(table(rows)).empty


def test_apply_filters_records_one_decision_per_recording():
    pipe = parse_pipeline(
        {
            "name": "x",
            "filters": [
                {"stage": "genre_filter", "deny": ["music"]},
                {"stage": "duration_filter", "max_s": 1000},
                {"stage": "metadata_dedup"},
            ],
        }
    )
    df = table(
        [
            {"recording_id": "m", "genre": "music"},
            {"recording_id": "long", "duration_s": 5000},
            {"recording_id": "a", "title": "T", "summary": "S", "published": "2020-01-01T01:00:00"},
            {"recording_id": "b", "title": "T", "summary": "S", "published": "2020-01-01T02:00:00"},
        ]
    )
    d = {x.recording_id: x for x in apply_filters(df, pipe.filters)}
    assert len(d) == 4
    assert (d["m"].kept, d["m"].stage) == (False, "genre_filter")
    assert (d["long"].kept, d["long"].stage) == (False, "duration_filter")
    assert (d["b"].kept, d["b"].stage, d["b"].duplicate_of) == (False, "metadata_dedup", "a")
    assert d["a"].kept and d["a"].stage == "kept"
