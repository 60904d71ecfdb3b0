"""Failure isolation: each kind of bad input becomes a failures.parquet row (or a warning when the audio is
usable), never stops the run, and never loses the other recordings."""

import numpy as np
import pytest
import soundfile as sf

from curate import manifest
from curate.config import load_pipeline
from curate.runners import run_pipeline
from curate.testing import tone, write_audio

GOOD = ["good1", "good2"]


def _truncated_flac(p):
    write_audio(p, tone(40.0), 16000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])


def _mp3_named_wav(p):
    mp3 = write_audio(p.with_suffix(".mp3"), tone(35.0), 16000)
    mp3.rename(p)


def _nan_wav(p):
    x = tone(35.0)
    x[1000:1100] = np.nan
    x[5000] = np.inf
    sf.write(p, x, 16000, subtype="FLOAT")


CASES = {
    # recording_id: (file name, how to make it)
    "missing": ("missing.flac", None),
    "zero_bytes": ("zero.flac", lambda p: p.write_bytes(b"")),
    "truncated": ("trunc.flac", _truncated_flac),
    "mp3_as_wav": ("mp3.wav", _mp3_named_wav),
    "rate_8k": ("r8.wav", lambda p: write_audio(p, tone(35.0, 8000), 8000)),
    "rate_44k": ("r44.flac", lambda p: write_audio(p, tone(35.0, 44100), 44100)),
    "rate_48k": ("r48.wav", lambda p: write_audio(p, tone(35.0, 48000), 48000)),
    "stereo": ("st.flac", lambda p: write_audio(p, tone(35.0, channels=2), 16000)),
    "nan_inf": ("nan.wav", _nan_wav),
    "silence": ("sil.flac", lambda p: write_audio(p, np.zeros(16000 * 35, np.float32), 16000)),
    "too_short": ("short.wav", lambda p: write_audio(p, tone(0.5), 16000)),
    "good1": ("g1.flac", lambda p: write_audio(p, tone(61.0), 16000)),
    "good2": ("g2.flac", lambda p: write_audio(p, tone(62.0), 16000)),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    lines = ["recording_id,audio_path,title,genre"]
    for rid, (name, make) in CASES.items():
        if make:
            make(root / name)
        lines.append(f"{rid},{name},Title {rid},news")
    lines.append("no_path,,Title,news")  # required field missing
    lines.append("good1,g2.flac,Duplicate id,news")  # duplicate recording_id
    body = "\n".join(lines).encode() + b"\nlatin1,g1.flac,Caf\xe9 de Paris,news\n"  # not UTF-8
    (root / "catalog.csv").write_bytes(body)
    pipe = load_pipeline("pipelines/seq.yaml")
    out = root / "run"
    run_pipeline(pipe, root / "catalog.csv", out, runner="local")
    failures = manifest.read_table(out / "failures.parquet", "failures").to_pylist()
    warnings = manifest.read_table(out / "warnings.parquet", "warnings").to_pylist()
    assert {f["severity"] for f in failures} <= {"error"} and {w["severity"] for w in warnings} == {"warning"}
    failures += warnings  # errors lost the recording; warnings are notes on one that went on
    segments = manifest.read_table(out / "variants" / "seq", "segments").to_pylist()
    recordings = manifest.read_table(out / "recordings.parquet", "recordings").to_pylist()
    return {"failures": failures, "segments": segments, "recordings": recordings}


def rows(run, rid):
    return [f for f in run["failures"] if f["recording_id"] == rid]


def segmented(run, rid):
    return any(s["recording_id"] == rid for s in run["segments"])


@pytest.mark.parametrize(
    ("rid", "severity", "error_type", "text"),
    [
        ("missing", "error", "AudioDecodeError", "file not found"),
        ("zero_bytes", "error", "AudioDecodeError", "empty file"),
        ("truncated", "error", "AudioDecodeError", "truncated"),
        ("too_short", "error", "TooShort", "shorter than 1.0 s"),
        ("no_path", "error", "MissingField", "audio_path"),
        ("rate_8k", "warning", "Resampled", "8000 Hz"),
        ("rate_44k", "warning", "Resampled", "44100 Hz"),
        ("rate_48k", "warning", "Resampled", "48000 Hz"),
        ("stereo", "warning", "Downmixed", "2 channels"),
        ("nan_inf", "warning", "Warning", "NaN/inf"),
        ("silence", "warning", "Warning", "silent"),
        ("latin1", "warning", "NonUtf8Metadata", "not UTF-8"),
        ("good1", "error", "DuplicateRecordingId", "already used"),
    ],
)
def test_each_bad_input_has_a_clear_row(run, rid, severity, error_type, text):
    hits = [f for f in rows(run, rid) if f["error_type"] == error_type]
    assert hits, f"no {error_type} row for {rid}: {rows(run, rid)}"
    assert hits[0]["severity"] == severity
    assert text in hits[0]["message"]
    if severity == "warning" and rid != "good1":
        assert segmented(run, rid), f"{rid} is usable audio and must still be segmented"


def test_error_rows_name_the_file(run):
    for f in run["failures"]:
        if f["error_type"] == "AudioDecodeError":
            assert f["audio_path"] and f["audio_path"] in f["message"]


def test_mp3_content_named_wav_is_decoded(run):
    assert segmented(run, "mp3_as_wav")
    assert not [f for f in rows(run, "mp3_as_wav") if f["severity"] == "error"]


def test_good_recordings_are_not_lost(run):
    for rid in GOOD:
        assert segmented(run, rid)
    first = [s for s in run["segments"] if s["recording_id"] == "good1"]
    assert len(first) == 2  # the duplicate-id row did not replace the first good1 (61 s → 2 windows)


def test_non_utf8_metadata_is_decoded(run):
    rec = next(r for r in run["recordings"] if r["recording_id"] == "latin1")
    assert rec["title"] == "Café de Paris"
