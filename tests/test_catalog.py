"""Catalog ingest: formats, relative paths, metadata columns, and bad rows as failure rows."""

import json

import pandas as pd
import pytest

from curate.catalog import CatalogError, ingest
from curate.testing import make_catalog, tone, write_audio


@pytest.fixture
def audio_dir(tmp_path):
    write_audio(tmp_path / "a.flac", tone(3.0), 16000)
    write_audio(tmp_path / "b.wav", tone(2.0, 44100, channels=2), 44100)
    return tmp_path


ROWS = [
    {
        "recording_id": "a",
        "audio_path": "a.flac",
        "title": "A",
        "genre": "news",
        "published": "2021-03-04",
        "language": "nl",
        "channel": "NPO1",
    },
    {
        "recording_id": "b",
        "audio_path": "b.wav",
        "title": "B",
        "genre": "talk",
        "published": "2021-03-04T20:15:00Z",
        "language": "en",
        "channel": "NPO2",
    },
]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_catalog_formats(audio_dir, fmt):
    path = audio_dir / f"catalog.{fmt}"
    df = pd.DataFrame(ROWS)
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "tsv":
        df.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    res = ingest(path)
    recs = {r.recording_id: r for r in res.recordings}
    assert set(recs) == {"a", "b"}
    assert recs["a"].audio_path == str((audio_dir / "a.flac").resolve())
    assert recs["a"].duration_s == pytest.approx(3.0)
    assert recs["b"].sample_rate == 44100 and recs["b"].num_channels == 2
    assert recs["b"].published == "2021-03-04T20:15:00"
    assert json.loads(recs["a"].metadata) == {"channel": "NPO1"}
    kinds = {(f.recording_id, f.error_type, f.severity) for f in res.failures}
    assert ("b", "Resampled", "warning") in kinds and ("b", "Downmixed", "warning") in kinds


def test_missing_required_column_is_fatal_with_clear_message(tmp_path):
    p = make_catalog(tmp_path / "c.csv", [{"recording_id": "a", "path": "x.wav"}])
    with pytest.raises(CatalogError, match=r"required column\(s\) \['audio_path'\] missing"):
        ingest(p)


def test_unknown_catalog_format(tmp_path):
    p = tmp_path / "c.xlsx"
    p.write_text("x")
    with pytest.raises(CatalogError, match="unknown catalog format"):
        ingest(p)
