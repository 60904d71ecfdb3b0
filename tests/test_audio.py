"""Audio decoding: formats, rates, channels, ranges, and clear errors for broken files."""

import numpy as np
import pytest
import soundfile as sf

from curate import audio
from curate.testing import tone, write_audio


@pytest.mark.parametrize(
    ("suffix", "sr", "channels"),
    [
        ("wav", 16000, 1),
        ("flac", 44100, 2),
        ("wav", 8000, 1),
        ("wav", 48000, 1),
        ("mp3", 44100, 1),
        ("ogg", 22050, 1),
        ("m4a", 16000, 1),
        ("opus", 48000, 1),
    ],
)
def test_decodes_any_format_to_16k_mono(tmp_path, suffix, sr, channels):
    path = write_audio(tmp_path / f"x.{suffix}", tone(3.0, sr, channels=channels), sr)
    info = audio.probe(path)
    assert info.duration_s == pytest.approx(3.0, abs=0.08)
    x = audio.load(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert len(x) / 16000 == pytest.approx(3.0, abs=0.08)
    assert 0.1 < np.abs(x).max() < 1.0


@pytest.mark.parametrize("suffix", ["flac", "mp3"])
def test_range_read_matches_full_decode(tmp_path, suffix):
    path = write_audio(tmp_path / f"x.{suffix}", tone(20.0, 16000, freq=330), 16000)
    full = audio.load(path)
    part = audio.load(path, 10.0, 12.5)
    assert len(part) == pytest.approx(2.5 * 16000, abs=400)
    ref = full[160000 : 160000 + len(part)]
    n = min(len(ref), len(part))
    assert np.corrcoef(ref[:n], part[:n])[0, 1] > 0.99


def test_range_read_of_flac_does_not_decode_the_whole_file(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "x.flac", tone(60.0), 16000)
    called = []
    monkeypatch.setattr(audio, "_ffmpeg_pcm", lambda *a, **k: called.append(a))
    x = audio.load(path, 30.0, 31.0)
    assert len(x) == 16000 and not called  # libsndfile seeks; no full ffmpeg decode


def test_stream_blocks_cover_the_file(tmp_path):
    path = write_audio(tmp_path / "x.flac", tone(7.3), 16000)
    blocks = list(audio.stream(path, block_s=2.0))
    assert [len(b) for b in blocks[:-1]] == [32000] * 3
    assert sum(len(b) for b in blocks) == pytest.approx(7.3 * 16000, abs=2)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 100), "not readable audio"),
    ],
)
def test_broken_files_raise_named_errors(tmp_path, make, problem):
    p = tmp_path / "broken.wav"
    make(p)
    with pytest.raises(audio.AudioDecodeError, match=problem) as e:
        audio.probe(p)
    assert str(p) in str(e.value)


def test_nonfinite_samples_are_zeroed_and_counted(tmp_path):
    x = tone(2.0)
    x[100:110] = np.nan
    x[200] = np.inf
    p = tmp_path / "nan.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    assert np.isfinite(audio.load(p)).all()
    assert audio.scan(p).nonfinite_samples == 11
