"""Audio fingerprints with Chromaprint, the AcoustID fingerprinter (through its ``pyacoustid`` binding).

Chromaprint turns audio into one 32-bit *sub-fingerprint* every 1365⅓ samples at 11025 Hz (≈ 0.124 s, ~8 per
second): 16 classifiers over a 12-bin chroma image, 2 bits each. Two recordings of the same audio give
sub-fingerprints that differ in a few bits (re-encoded mp3 vs flac: < 1 % of bits when aligned; a few % at a
half-item offset), unrelated audio differs in ~50 % of bits. That is what ``audio_dedup`` matches on.

Why Chromaprint: it is the maintained, packaged fingerprinter (Debian ``libchromaprint1``/``fpcalc``, used by
MusicBrainz/AcoustID and by the intro detection of media servers, which is the closest practice to finding
jingles and reruns), it is fast (C, FFT over 11 kHz audio) and its raw output is exactly the per-frame
hash sequence an inverted index needs. ``pyacoustid``'s ``chromaprint`` module is a thin ctypes binding to
the library, so audio decoded once by :func:`curate.audio.stream` is fed to it in-process, block by block
(bounded memory for 3-hour programmes), with no second decoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Chromaprint's internal rate: audio is decoded straight to it, so the library's own resampler is idle.
RATE = 11025
#: seconds between two raw sub-fingerprints (frame 4096, overlap 2/3 → hop 1365⅓ samples at 11025 Hz)
ITEM_S = 4096 / 3 / RATE
#: algorithm id of Chromaprint's default (TEST2), stored with each fingerprint
ALGORITHM = 1
_INSTALL = (
    "Chromaprint is not available: install the system library (`apt-get install libchromaprint-tools`, which "
    "brings libchromaprint1; `make setup` does this) and its binding (`pip install pyacoustid`)"
)


def _chromaprint():
    try:
        import chromaprint  # pyacoustid's ctypes binding; loading it opens libchromaprint.so.1
    except ImportError as e:  # the module, or the shared library it loads, is missing
        raise RuntimeError(f"{_INSTALL} ({e})") from None
    return chromaprint


def library_version() -> str:
    """The Chromaprint library version (e.g. ``1.5.1``), for run.json."""
    cp = _chromaprint()
    return cp._libchromaprint.chromaprint_get_version().decode()


def to_pcm16(block: np.ndarray) -> bytes:
    """float32 samples in [-1, 1] → little-endian int16 bytes, as Chromaprint reads them."""
    return (np.clip(block, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def fingerprint_blocks(blocks, rate: int = RATE) -> np.ndarray:
    """Raw sub-fingerprints (uint32) of consecutive mono float32 blocks at ``rate``."""
    cp = _chromaprint()
    fp = cp.Fingerprinter(cp.Fingerprinter.ALGORITHM_DEFAULT)
    fp.start(rate, 1)
    for block in blocks:
        if block.size:
            fp.feed(to_pcm16(block))
    encoded = fp.finish()
    if not encoded:  # too short for one item (< ~2.6 s)
        return np.zeros(0, np.uint32)
    raw, _ = cp.decode_fingerprint(encoded)
    return np.asarray(raw, dtype=np.int64).astype(np.uint32)


def fingerprint_array(samples: np.ndarray, rate: int) -> np.ndarray:
    """Raw sub-fingerprints of an in-memory mono float32 signal (tests, benchmarks)."""
    step = 60 * rate
    return fingerprint_blocks((samples[i : i + step] for i in range(0, samples.size, step)), rate)


def fingerprint_file(path: str | Path, block_s: float = 60.0) -> np.ndarray:
    """Raw sub-fingerprints of a whole file: decoded once, streaming, straight to 11025 Hz mono (any format
    ffmpeg reads). Raises :class:`~curate.audio.AudioDecodeError` for audio that cannot be decoded."""
    from curate import audio

    return fingerprint_blocks(audio.stream(path, block_s=block_s, sr=RATE))


def to_bytes(items: np.ndarray) -> bytes:
    return np.ascontiguousarray(items, dtype="<u4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


__all__ = [
    "ALGORITHM",
    "ITEM_S",
    "RATE",
    "fingerprint_array",
    "fingerprint_blocks",
    "fingerprint_file",
    "from_bytes",
    "library_version",
    "to_bytes",
    "to_pcm16",
]
