"""Catalogs and audio on object storage (fsspec URLs), against a local moto S3 server bound to 127.0.0.1.

Skipped without ``moto[server]`` and ``s3fs`` (``pip install -e '.[storage,dev]'``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curate import audio, manifest
from curate.catalog import CatalogError, ingest, resolve_audio_path
from curate.config import load_pipeline
from curate.runners import run_pipeline
from curate.testing import make_archive, make_catalog, tone, write_audio

BUCKET = "curate-test"
KEEP = ("segment_id", "recording_id", "start_s", "end_s", "variant")


@pytest.mark.parametrize(
    ("audio_path", "catalog", "expected"),
    [
        ("a/x.flac", "s3://b/c/catalog.csv", "s3://b/c/a/x.flac"),
        ("./x.flac", "s3://b/catalog.csv", "s3://b/x.flac"),
        ("gs://other/y.mp3", "/data/catalog.csv", "gs://other/y.mp3"),
        ("https://host/z.mp3", "s3://b/catalog.csv", "https://host/z.mp3"),
        ("/abs/x.wav", "s3://b/catalog.csv", Path("/abs/x.wav")),
        ("x.wav", "/data/catalog.csv", Path("/data/x.wav")),
    ],
)
def test_relative_audio_paths_resolve_against_the_catalog(audio_path, catalog, expected):
    assert resolve_audio_path(audio_path, catalog) == expected


def test_missing_backend_names_the_extra(monkeypatch):
    import fsspec.core

    def no_backend(url, **kw):
        raise ImportError("Install s3fs to access S3")

    monkeypatch.setattr(fsspec.core, "url_to_fs", no_backend)
    with pytest.raises(RuntimeError, match=r"s3:// URLs needs fsspec.*curate\[storage\]"):
        audio.probe("s3://bucket/x.flac")


@pytest.fixture(scope="module")
def archive(s3, tmp_path_factory):
    """The same recordings locally and in the bucket (flac through soundfile; mp3 and m4a, whose index is at
    the end, through ffmpeg), a local catalog and an s3 one (absolute URLs, relative paths, a missing object)."""
    root = tmp_path_factory.mktemp("archive")
    make_archive(root, n=3, duration_s=65.0)
    write_audio(root / "audio" / "rec003.mp3", tone(70.0, freq=330.0, seed=3))
    write_audio(root / "audio" / "rec004.m4a", tone(61.0, freq=370.0, seed=4))
    (root / "audio" / "junk.mp3").write_bytes(b"this is not audio at all" * 100)
    s3.put(str(root / "audio"), f"{BUCKET}/archive/audio", recursive=True)
    rows = [
        {"recording_id": f"rec{i:03d}", "title": f"Programme {i}", "genre": "news", "language": "nl"} for i in range(5)
    ]
    names = ["rec000.flac", "rec001.flac", "rec002.flac", "rec003.mp3", "rec004.m4a"]
    local = [{**r, "audio_path": f"audio/{n}"} for r, n in zip(rows, names, strict=True)]
    remote = [{**r, "audio_path": f"audio/{n}"} for r, n in zip(rows, names, strict=True)]
    remote[0]["audio_path"] = f"s3://{BUCKET}/archive/audio/rec000.flac"  # absolute URL
    missing = f"s3://{BUCKET}/archive/audio/nope.flac"
    remote.append({"recording_id": "gone", "audio_path": missing, "title": "Gone", "genre": "news"})
    make_catalog(root / "catalog.csv", local)
    make_catalog(root / "remote.csv", remote)
    s3.put(str(root / "remote.csv"), f"{BUCKET}/archive/catalog.csv")
    return {"root": root, "catalog": f"s3://{BUCKET}/archive/catalog.csv", "missing": missing}


@pytest.mark.parametrize("name", ["rec001.flac", "rec003.mp3", "rec004.m4a"])
def test_probe_load_and_scan_a_url_match_the_local_file(archive, name):
    url, local = f"s3://{BUCKET}/archive/audio/{name}", archive["root"] / "audio" / name
    assert audio.probe(url) == audio.probe(local)
    np.testing.assert_array_equal(audio.load(url, 10.0, 12.5), audio.load(local, 10.0, 12.5))
    assert audio.scan(url, block_s=20.0) == audio.scan(local, block_s=20.0)


def test_a_filesystem_that_cannot_sign_urls_is_fed_through_a_pipe(archive, s3, monkeypatch):
    def cannot_sign(self, path, expiration=100, **kw):
        raise NotImplementedError

    monkeypatch.setattr(type(s3), "sign", cannot_sign)
    name = "rec003.mp3"
    url, local = f"s3://{BUCKET}/archive/audio/{name}", archive["root"] / "audio" / name
    np.testing.assert_allclose(audio.load(url, 10.0, 12.5), audio.load(local, 10.0, 12.5), atol=1e-6)
    remote, here = audio.scan(url, block_s=20.0), audio.scan(local, block_s=20.0)
    # ffmpeg cannot trim an mp3's end padding (encoder delay) on a pipe: up to one frame (~26 ms) longer
    assert remote.decoded_duration_s == pytest.approx(here.decoded_duration_s, abs=0.03)
    assert remote.rms_dbfs == pytest.approx(here.rms_dbfs, abs=0.05)
    assert (remote.nonfinite_samples, remote.decoder_error) == (here.nonfinite_samples, here.decoder_error)


def test_missing_objects_are_clear(archive):
    with pytest.raises(audio.AudioDecodeError, match=r"nope\.flac: object not found"):
        audio.probe(archive["missing"])
    with pytest.raises(CatalogError, match=r"nothere\.csv: catalog file not found"):
        ingest(f"s3://{BUCKET}/nothere.csv")
    with pytest.raises(audio.AudioDecodeError, match="not readable audio") as e:
        audio.probe(f"s3://{BUCKET}/archive/audio/junk.mp3")
    assert "Signature" not in str(e.value)  # the presigned URL never reaches a message


def test_a_run_on_s3_matches_the_same_run_on_local_files(archive, tmp_path):
    pipe = load_pipeline("pipelines/seq.yaml")
    run_pipeline(pipe, archive["root"] / "catalog.csv", tmp_path / "local", runner="local")
    run_pipeline(pipe, archive["catalog"], tmp_path / "s3", runner="local")

    def segments(out):
        rows = manifest.read_table(out / "variants" / "seq", "segments").to_pylist()
        return sorted(tuple(r[k] for k in KEEP) for r in rows), {r["audio_path"] for r in rows}

    local, _ = segments(tmp_path / "local")
    remote, paths = segments(tmp_path / "s3")
    assert remote == local and len(local) == 10  # 2 full 30 s windows of each of 5 recordings
    names = ("rec000.flac", "rec001.flac", "rec002.flac", "rec003.mp3", "rec004.m4a")
    assert paths == {f"s3://{BUCKET}/archive/audio/{n}" for n in names}
    failures = manifest.read_table(tmp_path / "s3" / "failures.parquet", "failures").to_pylist()
    assert [(f["recording_id"], f["error_type"]) for f in failures] == [("gone", "AudioDecodeError")]
    assert f"{archive['missing']}: object not found" in failures[0]["message"]
    # the same command resumes (the s3 catalog is fingerprinted by content)
    run_pipeline(pipe, archive["catalog"], tmp_path / "s3", runner="local")
