"""`published` is read, never guessed: ISO dates and datetimes are accepted; a day/month form such as
05/01/2020 becomes null with a warning row, unless settings.published_format says how to read it."""

from datetime import date, datetime

import pandas as pd
import pytest

from curate import manifest
from curate.catalog import ingest
from curate.config import load_pipeline
from curate.runners import run_pipeline
from curate.testing import make_catalog, tone, write_audio


def normalise_published(value, fmt=None):
    from curate.catalog import normalise_published

    return normalise_published(value, fmt)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-01-05", "2020-01-05"),
        ("2020-01-05T20:00:00", "2020-01-05T20:00:00"),
        ("2020-01-05 20:00", "2020-01-05T20:00:00"),
        ("2020-01-05T20:00:00Z", "2020-01-05T20:00:00"),
        ("2020-01-05T22:00:00+02:00", "2020-01-05T20:00:00"),
        ("20200105", "2020-01-05"),
        (datetime(2020, 1, 5, 20), "2020-01-05T20:00:00"),
        (date(2020, 1, 5), "2020-01-05"),
        (pd.Timestamp("2020-01-05"), "2020-01-05"),
        (None, None),
        (pd.NaT, None),
    ],
)
def test_iso_dates_are_accepted(value, expected):
    assert normalise_published(value) == expected


@pytest.mark.parametrize("value", ["05/01/2020", "31/12/2020", "1/2/3", "12-31-2020", "May 2020", "yesterday"])
def test_ambiguous_or_unknown_forms_are_not_guessed(value):
    with pytest.raises(ValueError, match="day/month order is not guessed"):
        normalise_published(value)


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        ("31/12/2020", "%d/%m/%Y", "2020-12-31"),
        ("05/01/2020", "%d/%m/%Y", "2020-01-05"),
        ("05/01/2020", "%m/%d/%Y", "2020-05-01"),
        ("2020-01-05", "%d/%m/%Y", "2020-01-05"),  # ISO is read whatever the format
    ],
)
def test_a_published_format_says_how_to_read_them(value, fmt, expected):
    assert normalise_published(value, fmt) == expected


def test_a_value_that_does_not_match_the_format_is_an_error():
    with pytest.raises(ValueError, match="neither ISO nor in published_format"):
        normalise_published("1/2/3", "%d/%m/%Y")


@pytest.fixture
def catalog(tmp_path):
    p = write_audio(tmp_path / "a.flac", tone(2.0), 16000)
    values = {"iso": "2020-01-05", "dmy": "05/01/2020", "eu": "31/12/2020", "short": "1/2/3"}
    return make_catalog(
        tmp_path / "catalog.csv", [{"recording_id": k, "audio_path": str(p), "published": v} for k, v in values.items()]
    )


def test_ingest_leaves_ambiguous_dates_null_with_a_warning_row(catalog):
    result = ingest(catalog)
    published = {r.recording_id: r.published for r in result.recordings}
    assert published == {"iso": "2020-01-05", "dmy": None, "eu": None, "short": None}
    warned = {f.recording_id for f in result.failures if f.error_type == "BadPublished" and f.severity == "warning"}
    assert warned == {"dmy", "eu", "short"}


def test_settings_published_format_reaches_ingest(catalog, tmp_path):
    pipe = load_pipeline("pipelines/seq.yaml", ["settings.published_format=%d/%m/%Y"])
    run_pipeline(pipe, catalog, tmp_path / "run", runner="local")
    recs = manifest.read_table(tmp_path / "run" / "recordings.parquet", "recordings").to_pylist()
    assert {r["recording_id"]: r["published"] for r in recs} == {
        "iso": "2020-01-05",
        "dmy": "2020-01-05",
        "eu": "2020-12-31",
        "short": None,
    }
