"""Schema and manifest I/O: explicit schemas, version stamping, refusal of mismatches, atomic writes."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import manifest, schema
from curate.schema import Segment, Word
from curate.testing import fake_segments


def test_segment_roundtrip_keeps_every_field(tmp_path):
    seg = Segment.new(
        "rec1",
        "/a/rec1.flac",
        1.25,
        4.5,
        "w-raw",
        text="Hallo.",
        language="nl",
        speaker="S0",
        avg_logprob=-0.3,
        no_speech_prob=0.01,
        compression_ratio=1.2,
        words=(Word("Hallo.", 1.25, 1.9, 0.8),),
    )
    path = manifest.write_records(tmp_path / "part-00000.parquet", [seg], "segments")
    back = manifest.read_segments(path)
    assert back == [seg]
    assert seg.segment_id == "rec1_00001250_00004500"
    assert seg.duration_s == pytest.approx(3.25)


def test_written_schema_is_explicit_and_versioned(tmp_path):
    path = manifest.write_records(tmp_path / "x.parquet", fake_segments([(0, 1)]), "segments")
    pf = pq.ParquetFile(path)
    assert pf.schema_arrow.remove_metadata() == schema.SEGMENT_SCHEMA
    assert pf.schema_arrow.metadata[b"curate.schema_version"] == str(schema.SCHEMA_VERSION).encode()


def test_reader_refuses_other_schema_version(tmp_path, monkeypatch):
    path = manifest.write_records(tmp_path / "x.parquet", fake_segments([(0, 1)]), "segments")
    monkeypatch.setattr(manifest, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    v = schema.SCHEMA_VERSION
    with pytest.raises(manifest.SchemaMismatchError, match=rf"schema v{v}, this curate reads v{v + 1}"):
        manifest.read_table(path, "segments")


def test_reader_refuses_foreign_parquet(tmp_path):
    p = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"a": [1]}), p)
    with pytest.raises(manifest.SchemaMismatchError, match="not a curate manifest"):
        manifest.read_table(p, "segments")


def test_reader_refuses_wrong_kind(tmp_path):
    path = manifest.write_records(tmp_path / "x.parquet", [], "decisions")
    with pytest.raises(manifest.SchemaMismatchError, match="holds 'decisions' rows"):
        manifest.read_table(path, "segments")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = manifest.write_records(tmp_path / "x.parquet", fake_segments([(0, 1)]), "segments")
    with pytest.raises(Exception):  # noqa: B017 - any failure while building the table
        manifest.write_records(path, [{"segment_id": None}], "segments")
    assert len(manifest.read_segments(path)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]  # no temp file left behind


def test_directory_of_parts_reads_in_order(tmp_path):
    d = tmp_path / "variants" / "seq"
    manifest.write_records(d / "part-00001.parquet", fake_segments([(30, 60)]), "segments")
    manifest.write_records(d / "part-00000.parquet", fake_segments([(0, 30)]), "segments")
    assert [s.start_s for s in manifest.read_segments(d)] == [0, 30]
    assert sum(b.num_rows for b in manifest.iter_batches(d, "segments")) == 2
