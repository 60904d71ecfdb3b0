"""A Kaldi data directory per split: ``wav.scp``, ``segments``, ``utt2spk``, ``spk2utt``, ``reco2dur`` and
``text``, sorted in C locale order as ``utils/validate_data_dir.sh`` requires.

``text`` lists every utterance (``validate_data_dir.sh`` needs it unless called with ``--no-text``); a segment
without text has an empty transcript, which ``utils/validate_text.pl`` accepts. Transcripts keep their words
(Kaldi recipes normalize with their own lexicon) minus what the validator refuses: control and other
non-printable characters, U+FFFD, Unicode whitespace other than the space, and the symbols ``<s> </s> #0``.

Utterance ids are prefixed with their speaker id (``<recording>-<speaker>`` when the variant has speaker
labels, else the recording), so sorting by utterance also sorts by speaker. ``wav.scp`` gives a plain
path for 16 kHz mono WAV sources, an ``ffmpeg … |`` pipe for other local files (Kaldi reads only WAV), and
``curate cat URL |`` for recordings on object storage (ffmpeg cannot read ``s3://``; ``curate cat`` decodes
through the same fsspec reader as the run, so the machine running Kaldi needs ``curate[storage]`` and the
bucket's credentials).
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
import struct
import unicodedata
from typing import Any, BinaryIO

import numpy as np

from curate import audio, manifest
from curate.export.common import ExportContext, meta_records

log = logging.getLogger(__name__)
_BAD = re.compile(r"[\s\x00-\x1f\x7f]")


_ILLEGAL = {"<s>", "</s>", "#0"}


def kaldi_text(text: str | None) -> str:
    """A transcript as ``validate_data_dir.sh`` accepts it (see the module docstring); "" for none."""
    if text is None:
        return ""
    kept = []
    for c in str(text):
        if c.isspace():
            kept.append(" ")
        elif c.isprintable() and c != "\ufffd" and unicodedata.category(c) != "Co":
            kept.append(c)
    words = "".join(kept).split()
    return " ".join(w for w in words if w not in _ILLEGAL)


def kaldi_id(s: str) -> str:
    """A Kaldi id of a free-text id: whitespace and control characters become ``_`` (Kaldi splits lines on
    whitespace), and an id that had any gains a short hash of the original, so two ids never collide."""
    s = str(s)
    out = _BAD.sub("_", s)
    if out == s and out:
        return out
    return f"{out}_{hashlib.sha256(s.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def wav_entry(path: str, sample_rate: int, num_channels: int) -> str:
    if audio.is_url(path):
        return f"curate cat {shlex.quote(path)} |"
    if path.lower().endswith(".wav") and sample_rate == 16000 and num_channels == 1 and not _BAD.search(path):
        return path
    return f"ffmpeg -nostdin -v error -i {shlex.quote(path)} -ac 1 -ar 16000 -f wav - |"


def wav_header(num_samples: int | None, sr: int = audio.SAMPLE_RATE) -> bytes:
    """A 16-bit mono PCM WAV header; ``None``: length unknown (0xFFFFFFFF sizes, as ffmpeg writes to a pipe)."""
    data = 0xFFFFFFFF if num_samples is None else 2 * num_samples
    riff = 0xFFFFFFFF if num_samples is None else 36 + data
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", riff, b"WAVE", b"fmt ", 16, 1, 1, sr, 2 * sr, 2, 16, b"data", data
    )


def cat_wav(path: str, out: BinaryIO, start_s: float = 0.0, end_s: float | None = None) -> int:
    """Write ``[start_s, end_s)`` of ``path`` (a file or URL) to ``out`` as curate's 16 kHz mono decode in a
    16-bit WAV, for ``wav.scp`` pipes. The whole file streams in blocks (bounded memory, length unknown in the
    header); a range is decoded at once with an exact header. Returns the number of samples written."""
    from curate.export.materialize import to_int16

    if start_s > 0 or end_s is not None:
        pcm = to_int16(audio.load(path, start_s, end_s))
        out.write(wav_header(pcm.size) + pcm.tobytes())
        return int(pcm.size)
    out.write(wav_header(None))
    n = 0
    for block in audio.stream(path, block_s=30.0):
        pcm = to_int16(np.asarray(block))
        out.write(pcm.tobytes())
        n += pcm.size
    return n


def _lines(pairs: list[tuple[str, str]]) -> str:
    # Kaldi sorts with LC_ALL=C: byte order of the UTF-8 encoded ids.
    return "".join(f"{k} {v}\n" if v else f"{k}\n" for k, v in sorted(pairs, key=lambda kv: kv[0].encode()))


def write(ctx: ExportContext) -> dict[str, Any]:
    recs = {r["recording_id"]: r for r in ctx.recordings.to_dict("records")}
    dirs = []
    for name, part in ctx.splits():
        rows = meta_records(part)
        d = ctx.out_dir / name
        utt2spk, segments, text = [], [], []
        for r in rows:
            reco = kaldi_id(r["recording_id"])
            spk = f"{reco}-{kaldi_id(r['speaker'])}" if r["speaker"] else reco
            utt = f"{spk}-{kaldi_id(r['segment_id'])}"
            utt2spk.append((utt, spk))
            segments.append((utt, f"{reco} {r['start_s']!r} {r['end_s']!r}"))
            text.append((utt, kaldi_text(r["text"])))
        spk2utt: dict[str, list[str]] = {}
        for utt, spk in sorted(utt2spk, key=lambda kv: kv[0].encode()):
            spk2utt.setdefault(spk, []).append(utt)
        used = sorted({r["recording_id"] for r in rows})
        wav = [
            (kaldi_id(i), wav_entry(recs[i]["audio_path"], recs[i]["sample_rate"], recs[i]["num_channels"]))
            for i in used
        ]
        dur = [(kaldi_id(i), repr(float(recs[i]["duration_s"]))) for i in used]
        manifest.atomic_write_text(d / "wav.scp", _lines(wav))
        manifest.atomic_write_text(d / "segments", _lines(segments))
        manifest.atomic_write_text(d / "utt2spk", _lines(utt2spk))
        manifest.atomic_write_text(d / "spk2utt", _lines([(s, " ".join(u)) for s, u in spk2utt.items()]))
        manifest.atomic_write_text(d / "reco2dur", _lines(dur))
        manifest.atomic_write_text(d / "text", _lines(text))
        ctx.advance(len(rows))
        if urls := sum(1 for i in used if audio.is_url(recs[i]["audio_path"])):
            log.warning(
                "kaldi: %d of %d %s recordings are URLs; wav.scp reads them with `curate cat URL |`, which needs "
                "curate[storage] and the bucket's credentials where Kaldi runs",
                urls,
                len(used),
                name,
            )
        if empty := sum(1 for _, t in text if not t):
            log.warning("kaldi: %d of %d %s segments have no text (empty transcripts)", empty, len(rows), name)
        dirs.append(name)
    return {"data_dirs": dirs}
