"""Catalog ingest: formats, relative paths, metadata columns, and bad rows as failure rows."""

import json
import re

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


def _catalog_over(tmp_path, name: str, path_of) -> tuple:
    """1,000 rows over 3 files (plus a missing one, a short one, bad rows); ``path_of(i, file)`` spells row i's path."""
    files = ["long.flac", "stereo.wav", "short.wav", "missing.wav"]
    rows = []
    for i in range(1000):
        f = files[i % 4] if i % 50 else files[i % 3]
        rows.append(
            {
                "recording_id": f"r{i:04d}" if i != 7 else "r0006",  # row 7: a duplicate id
                "audio_path": path_of(i, f) if i != 9 else "",  # row 9: missing field
                "title": f"T{i % 13}",
                "published": "05/01/2020" if i % 17 == 0 else "2021-03-04",
                "channel": f"c{i % 5}",
            }
        )
    return make_catalog(tmp_path / name, rows), files


def test_ingest_probes_each_distinct_file_once(tmp_path, monkeypatch):
    """Rows sharing a file reuse its probe, and the tables equal those of probing every row (each row's own
    hard link of the file)."""
    from curate import audio, manifest

    write_audio(tmp_path / "long.flac", tone(3.0), 16000)
    write_audio(tmp_path / "stereo.wav", tone(2.0, 44100, channels=2), 44100)
    write_audio(tmp_path / "short.wav", tone(0.5), 16000)
    links = tmp_path / "links"
    links.mkdir()

    def linked(i: int, f: str) -> str:
        if (tmp_path / f).exists():
            (links / f"{i}_{f}").hardlink_to(tmp_path / f)
        return f"links/{i}_{f}"

    shared, _ = _catalog_over(tmp_path, "shared.csv", lambda i, f: f)
    each, _ = _catalog_over(tmp_path, "each.csv", linked)
    calls = []
    real = audio.probe
    monkeypatch.setattr(audio, "probe", lambda p: calls.append(p) or real(p))
    got = ingest(shared)
    assert len(calls) == 4  # 3 files + the missing one, once each
    calls.clear()
    want = ingest(each)
    assert len(calls) == 998  # every row but the duplicate-id and missing-field rows, each its own link

    def table(res, kind: str, name: str) -> list[dict]:
        p = manifest.write_records(tmp_path / name, res, kind)
        rows = manifest.read_table(p, kind).to_pylist()
        text = json.dumps(rows, sort_keys=True).replace(str(links) + "/", "").replace(str(tmp_path) + "/", "")
        return json.loads(re.sub(r"\d+_(long|stereo|short|missing)", r"\1", text).replace("each.csv", "shared.csv"))

    assert table(got.recordings, "recordings", "a.parquet") == table(want.recordings, "recordings", "b.parquet")
    assert table(got.failures, "failures", "fa.parquet") == table(want.failures, "failures", "fb.parquet")
    kinds = {f.error_type for f in got.failures}
    assert {"AudioDecodeError", "TooShort", "DuplicateRecordingId", "MissingField", "BadPublished"} <= kinds
    assert len(got.recordings) == 502
