"""Decoding never hangs a run: ffmpeg's stderr is drained while it runs (a damaged file can make it print far
more than a pipe buffer holds), and a per-recording watchdog kills a decode that runs too long. Either way
the recording becomes a failure row and every other recording is still processed."""

import shutil
import stat
import subprocess

import pytest

from curate import audio, manifest
from curate.config import load_pipeline
from curate.runners import run_pipeline
from curate.testing import make_catalog, tone, write_audio

PIPE_BUFFER = 65536  # Linux pipe capacity: more stderr than this blocked ffmpeg when nobody read it


def _stderr_flood_mp3(path, duration_s=40.0):
    """An mp3 with a damaged byte every 97 bytes: ffmpeg decodes it with hundreds of KiB of error lines."""
    mp3 = write_audio(path, tone(duration_s), 16000)
    data = bytearray(mp3.read_bytes())
    for i in range(2000, len(data) - 100, 97):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _joined_flac(path, duration_s=60.0):
    """Two flac files joined with `-c copy` (a common archive accident): an error line per packet of the second."""
    wav = write_audio(path.with_name("part.wav"), tone(duration_s), 16000)
    part = path.with_name("part.flac")  # ffmpeg's encoder: small frames, so many error lines
    subprocess.run(["ffmpeg", "-nostdin", "-v", "quiet", "-y", "-i", str(wav), str(part)], check=True)
    cmd = ["ffmpeg", "-nostdin", "-v", "quiet", "-y", "-i", f"concat:{part}|{part}", "-c", "copy", str(path)]
    subprocess.run(cmd, check=True)
    return path


def _stderr_bytes(path):
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", "16000", "-"]
    return len(subprocess.run(cmd, capture_output=True).stderr)


@pytest.fixture(scope="module")
def floods(tmp_path_factory):
    root = tmp_path_factory.mktemp("flood")
    files = {"flood_mp3": _stderr_flood_mp3(root / "flood.mp3"), "joined_flac": _joined_flac(root / "joined.flac")}
    for name, p in files.items():  # the fixture reproduces the fault only if ffmpeg overflows the pipe
        assert _stderr_bytes(p) > PIPE_BUFFER, f"{name} no longer floods ffmpeg's stderr"
    return files


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["flood_mp3", "joined_flac"])
def test_scan_of_a_file_that_floods_stderr_finishes(floods, name):
    result = audio.scan(floods[name])
    assert result.decoded_duration_s > 30


@pytest.mark.timeout(60)
def test_undecodable_file_names_ffmpegs_last_error_line(tmp_path):
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(bytes(range(256)) * 400)
    with pytest.raises(audio.AudioDecodeError, match="ffmpeg could not decode it") as e:
        list(audio.stream(bad))
    assert str(bad) in str(e.value) and len(str(e.value)) < 1000


@pytest.mark.timeout(180)
def test_run_with_a_stderr_flood_finishes_and_keeps_the_others(floods, tmp_path):
    rows = [{"recording_id": n, "audio_path": str(p)} for n, p in floods.items()]
    for i in range(2):
        p = write_audio(tmp_path / f"good{i}.flac", tone(61.0 + i, seed=i), 16000)
        rows.append({"recording_id": f"good{i}", "audio_path": str(p)})
    out = tmp_path / "run"
    run_pipeline(load_pipeline("pipelines/seq.yaml"), make_catalog(tmp_path / "catalog.csv", rows), out, runner="local")
    segments = manifest.read_table(out / "variants" / "seq", "segments").to_pylist()
    failures = manifest.read_table(out / "failures.parquet", "failures").to_pylist()
    assert {s["recording_id"] for s in segments} >= {"good0", "good1"}
    flood_errors = [f for f in failures if f["recording_id"] == "flood_mp3" and f["severity"] == "error"]
    assert flood_errors, failures  # it decodes ~10 % short: damaged, a failure row
    assert all(len(f["message"]) < 1000 for f in failures)


@pytest.fixture
def hanging_ffmpeg(tmp_path, monkeypatch):
    """An ffmpeg that never finishes on files named *hang* (a decoder stuck at 0 % CPU) and is the real one
    for every other file."""
    real = shutil.which("ffmpeg")
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\ncase "$*" in *hang*) exec sleep 600;; esac\nexec {real} "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(audio, "_ffmpeg", lambda: str(fake))
    return fake


@pytest.mark.timeout(60)
def test_watchdog_kills_a_stuck_decode(hanging_ffmpeg, tmp_path):
    p = write_audio(tmp_path / "hang.flac", tone(5.0), 16000)
    with pytest.raises(audio.DecodeTimeout, match="watchdog"):
        audio.scan(p, timeout_s=1.0)
    assert audio.scan(write_audio(tmp_path / "ok.flac", tone(5.0), 16000), timeout_s=30).decoded_duration_s == 5.0


@pytest.mark.timeout(120)
def test_run_with_a_stuck_decoder_gives_a_failure_row_and_goes_on(hanging_ffmpeg, tmp_path):
    rows = []
    for name in ("good0", "hang", "good1"):
        p = write_audio(tmp_path / f"{name}.flac", tone(61.0), 16000)
        rows.append({"recording_id": name, "audio_path": str(p)})
    pipe = load_pipeline("pipelines/seq.yaml", ["settings.watchdog_floor_s=3", "settings.watchdog_factor=0"])
    out = tmp_path / "run"
    run_pipeline(pipe, make_catalog(tmp_path / "catalog.csv", rows), out, runner="local")
    segments = manifest.read_table(out / "variants" / "seq", "segments").to_pylist()
    failures = manifest.read_table(out / "failures.parquet", "failures").to_pylist()
    assert {s["recording_id"] for s in segments} == {"good0", "good1"}
    (row,) = [f for f in failures if f["recording_id"] == "hang"]
    assert (row["error_type"], row["severity"]) == ("DecodeTimeout", "error")
    assert "longer than 3 s" in row["message"] and str(tmp_path / "hang.flac") in row["message"]


def test_watchdog_settings_are_validated():
    from curate.errors import ConfigError

    with pytest.raises(ConfigError, match="watchdog"):
        load_pipeline("pipelines/seq.yaml", ["settings.watchdog_floor_s=0"])
    pipe = load_pipeline("pipelines/seq.yaml", ["settings.watchdog_factor=2", "settings.watchdog_floor_s=10"])
    assert pipe.settings.decode_timeout_s(100.0) == 210.0
