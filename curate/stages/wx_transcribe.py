"""WhisperX transcription (variant ``wx-asr``): VAD → cut & merge into chunks ≤ 30 s → batched Whisper.

WhisperX (Bain et al. 2023) runs a VAD first, cuts over-long speech regions at their least-speechy frame
(min-cut) and merges neighbouring regions into chunks of at most ``chunk_s`` seconds, then transcribes all
chunks in batches without timestamp tokens. The segments of ``wx-asr`` are those chunks with their text.

The cut & merge is whisperx's own code (``whisperx.vads.pyannote.Pyannote.merge_chunks``) fed with our
pyannote speech scores; transcription is faster-whisper's ``BatchedInferencePipeline`` with the chunks as
``clip_timestamps`` (what whisperx does internally), or with ``backend: transformers`` the same chunks in
batches through transformers' Whisper (:mod:`curate.models.hf_whisper`: fp16/bf16 + SDPA on GPU, fp32 on CPU;
a ``faster-whisper:NAME`` model then means ``transformers:NAME``, the same weights converted). Whisper's own
word timestamps (cross-attention DTW) are kept on each segment's ``words`` when ``word_timestamps`` is on:
``wx_align`` falls back to them when no wav2vec2 alignment model is available.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate import timeline
from curate.audio import SAMPLE_RATE
from curate.errors import ConfigError
from curate.models.vad import BACKENDS, FrameScores, VadModel
from curate.registry import register
from curate.schema import RejectedSegment, Segment, Word
from curate.stages.base import ModelStage, RecordingContext, Resources, StageResult

WHISPER_BACKENDS = ("faster-whisper", "transformers")

log = logging.getLogger(__name__)


def merge_chunks(
    scores: FrameScores, chunk_s: float = 30.0, onset: float = 0.5, offset: float | None = 0.363
) -> list[timeline.Interval]:
    """WhisperX's cut & merge on frame speech scores: regions longer than ``chunk_s`` are cut at their
    lowest-scoring frame (second half), then consecutive regions are merged while a chunk stays ≤ ``chunk_s``."""
    from pyannote.core import SlidingWindow, SlidingWindowFeature
    from whisperx.vads.pyannote import Pyannote

    if not len(scores.values) or float(np.max(scores.values)) <= onset:
        return []
    swf = SlidingWindowFeature(
        np.asarray(scores.values, dtype=np.float32).reshape(-1, 1),
        SlidingWindow(start=scores.start_s, duration=scores.duration_s, step=scores.step_s),
    )
    chunks = Pyannote.merge_chunks(swf, chunk_s, onset=onset, offset=offset)
    return [(max(0.0, float(c["start"])), float(c["end"])) for c in chunks if c["end"] > c["start"]]


def cut_and_merge(
    scores: FrameScores, chunk_s: float = 30.0, onset: float = 0.5, offset: float | None = 0.363
) -> list[timeline.Interval]:
    """:func:`merge_chunks` without pyannote.core or whisperx (a port of whisperx's ``Binarize`` with its
    min-cut and of ``Vad.merge_chunks``), for machines that have only numpy (``benchmarks/gpu_curate.py``)."""
    v = np.asarray(scores.values, dtype=np.float64).reshape(len(scores.values), -1).max(axis=1)
    if not len(v) or float(v.max()) <= onset:
        return []
    offset = offset or onset
    ts = [float(t) for t in scores.times()]
    regions: list[timeline.Interval] = []
    start, active, t = ts[0], v[0] > onset, ts[0]
    cur_v, cur_t = [v[0]], [start]
    for t, y in zip(ts[1:], v[1:], strict=True):
        if active:
            if t - start > chunk_s:  # cut at the least speechy frame of the second half
                i = len(cur_v) // 2 + int(np.argmin(cur_v[len(cur_v) // 2 :]))
                regions.append((start, cur_t[i]))
                start, cur_v, cur_t = cur_t[i], cur_v[i + 1 :], cur_t[i + 1 :]
            elif y < offset:
                regions.append((start, t))
                start, active, cur_v, cur_t = t, False, [], []
            cur_v.append(y)
            cur_t.append(t)
        elif y > onset:
            start, active = t, True
    if active:
        regions.append((start, t))
    regions = sorted((s, e) for s, e in regions if e > s)
    out: list[timeline.Interval] = []
    cur_s, cur_e = regions[0][0], 0.0
    for s, e in regions:  # merge while a chunk stays <= chunk_s
        if e - cur_s > chunk_s and cur_e - cur_s > 0:
            out.append((cur_s, cur_e))
            cur_s = s
        cur_e = e
    out.append((cur_s, cur_e))
    return [(max(0.0, s), e) for s, e in out if e > s]


def merge_regions(regions: list[timeline.Interval], chunk_s: float = 30.0) -> list[timeline.Interval]:
    """WhisperX's merge step for VADs that give regions (Silero): regions must already be ≤ ``chunk_s``."""
    from whisperx.diarize import Segment as XSegment
    from whisperx.vads.vad import Vad

    if not regions:
        return []
    chunks = Vad.merge_chunks([XSegment(s, e, "UNKNOWN") for s, e in regions], chunk_s, 0.5, None)
    return [(float(c["start"]), float(c["end"])) for c in chunks if c["end"] > c["start"]]


def load_whisper(path: str, device: str = "cpu", compute_type: str = "int8", cpu_threads: int = 0) -> Any:
    """A faster-whisper (CTranslate2) model from a local directory."""
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
    except Exception as e:  # CTranslate2 raises RuntimeError/ValueError for a bad directory
        raise RuntimeError(f"{path}: cannot load a faster-whisper model ({type(e).__name__}: {e})") from e


def chunk_row(
    s0: float,
    e0: float,
    text: str,
    words: list[tuple[str, float, float, float]],
    offset: float = 0.0,
    avg_logprob: float | None = None,
    no_speech_prob: float | None = None,
    compression_ratio: float | None = None,
) -> dict:
    """One transcribed chunk ``[s0, e0)`` as both backends return it: ``words`` are ``(word, start, end,
    probability)`` with times relative to ``offset``, clamped into the chunk."""
    out_words = []
    for w, ws, we, p in words:
        ws, we = min(max(offset + ws, s0), e0), min(max(offset + we, s0), e0)
        out_words.append(Word(w.strip(), ws, max(ws, we), p))
    return {
        "start_s": s0,
        "end_s": e0,
        "text": text.strip(),
        "words": out_words,
        "avg_logprob": avg_logprob,
        "no_speech_prob": no_speech_prob,
        "compression_ratio": compression_ratio,
    }


def transcribe_chunks(
    model: Any,
    audio: np.ndarray,
    chunks: list[timeline.Interval],
    language: str | None,
    batch_size: int = 8,
    beam_size: int = 5,
    word_timestamps: bool = True,
) -> tuple[list[dict], str]:
    """Transcribe each chunk once, batched. Returns (one dict per chunk: start_s, end_s, text, avg_logprob,
    no_speech_prob, compression_ratio, words), language used or detected."""
    from faster_whisper import BatchedInferencePipeline

    if not chunks:
        return [], language or ""
    pipe = BatchedInferencePipeline(model)
    segs, info = pipe.transcribe(
        audio,
        language=language,
        batch_size=batch_size,
        beam_size=beam_size,
        vad_filter=False,
        clip_timestamps=[{"start": s, "end": e} for s, e in chunks],
        without_timestamps=True,
        word_timestamps=word_timestamps,
        log_progress=False,
    )
    fps = model.frames_per_second
    by_seek = {int(s * fps): i for i, (s, _) in enumerate(chunks)}
    parts: list[list[Any]] = [[] for _ in chunks]  # the faster-whisper segments of each chunk
    for k, seg in enumerate(segs):
        parts[by_seek.get(seg.seek, min(k, len(chunks) - 1))].append(seg)
    out = []
    for (s0, e0), segs_i in zip(chunks, parts, strict=True):
        last = segs_i[-1] if segs_i else None
        words = [(w.word, float(w.start), float(w.end), float(w.probability)) for g in segs_i for w in g.words or []]
        text = " ".join(t for t in (g.text.strip() for g in segs_i) if t)
        stats = (last.avg_logprob, last.no_speech_prob, last.compression_ratio) if last else (None, None, None)
        out.append(chunk_row(s0, e0, text, words, 0.0, *stats))
    return out, info.language


def transcribe_chunks_hf(
    hw: Any,
    audio: np.ndarray,
    chunks: list[timeline.Interval],
    language: str | None,
    batch_size: int = 8,
    beam_size: int = 5,
    word_timestamps: bool = True,
) -> tuple[list[dict], str]:
    """:func:`transcribe_chunks` with transformers' Whisper: the same rows. Without a language, the first
    batch's most frequent detected language is used for the whole recording (one language per recording)."""
    from collections import Counter

    from curate.models.hf_whisper import transcribe_batch

    out: list[dict] = []
    for b in range(0, len(chunks), batch_size):
        part = chunks[b : b + batch_size]
        clips = [audio[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)] for s, e in part]
        rows = transcribe_batch(hw, clips, language, beam_size, word_timestamps)
        if language is None and rows:
            language = Counter(r["language"] for r in rows).most_common(1)[0][0]
            if len({r["language"] for r in rows}) > 1:  # decode again in the chosen language
                rows = transcribe_batch(hw, clips, language, beam_size, word_timestamps)
        for (s0, e0), r in zip(part, rows, strict=True):
            stats = (r["avg_logprob"], r["no_speech_prob"], r["compression_ratio"])
            out.append(chunk_row(s0, e0, r["text"], r["words"], s0, *stats))
    return out, language or ""


def chunk_segments(
    rows: list[dict], recording_id: str, audio_path: str, language: str | None, variant: str = ""
) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    """Transcribed chunks → (segments with text, empty chunks with a reason)."""
    kept, dropped = [], []
    for r in rows:
        seg = Segment.new(
            recording_id,
            audio_path,
            r["start_s"],
            r["end_s"],
            variant,
            text=r["text"] or None,
            language=language or None,
            avg_logprob=r["avg_logprob"],
            no_speech_prob=r["no_speech_prob"],
            compression_ratio=r["compression_ratio"],
            words=tuple(r["words"]) or None,
        )
        (kept.append(seg) if r["text"] else dropped.append((seg, "no transcript")))
    return kept, dropped


@register("wx_transcribe")
@dataclass
class WxTranscribe(ModelStage):
    """VAD + cut & merge + batched Whisper (faster-whisper or transformers): one segment per chunk (``wx-asr``)."""

    backend: str = "faster-whisper"  # or transformers (PyTorch; GPU: fp16/bf16 + SDPA)
    model: str = "faster-whisper:base"  # a spec (faster-whisper:large-v2, …) or a local CTranslate2 directory
    vad: str = "pyannote"  # pyannote | silero
    vad_model: str = "pyannote:segmentation"
    vad_onset: float = 0.5  # WhisperX defaults
    vad_offset: float = 0.363
    vad_step_s: float = 0.5
    chunk_s: float = 30.0
    batch_size: int = 8
    beam_size: int = 5
    word_timestamps: bool = True  # keep Whisper's word times (wx_align's fallback)
    device: str = "auto"
    compute_type: str = "auto"  # faster-whisper; auto: float16 on GPU, int8 on CPU
    precision: str = "auto"  # transformers; auto: float16 on GPU, float32 on CPU (or bfloat16, float32)
    cpu_threads: int = 0
    model_store: str | None = None

    resources = Resources(cpus=1, gpus=1)

    def validate(self) -> None:
        from curate.models.hf_whisper import PRECISIONS

        if self.backend not in WHISPER_BACKENDS:
            raise ConfigError(f"wx_transcribe.backend must be one of {WHISPER_BACKENDS}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"wx_transcribe.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.vad not in BACKENDS:
            raise ConfigError(f"wx_transcribe.vad must be one of {BACKENDS}, got {self.vad!r}")
        if not 0 < self.chunk_s <= 30:
            raise ConfigError(f"wx_transcribe.chunk_s must be in (0, 30] (Whisper's window), got {self.chunk_s}")
        if self.batch_size < 1 or self.beam_size < 1:
            raise ConfigError("wx_transcribe: batch_size and beam_size must be >= 1")
        if not 0 < self.vad_offset <= self.vad_onset < 1:
            raise ConfigError(
                f"wx_transcribe: need 0 < vad_offset <= vad_onset < 1, got {self.vad_onset}, {self.vad_offset}"
            )

    def _model_spec(self) -> str:
        from curate.models.hf_whisper import spec_for_backend

        return spec_for_backend(self.model, self.backend)

    def model_specs(self) -> list[tuple[str, str | None]]:
        vad = self.vad_model if self.vad == "pyannote" else "silero:vad"
        return [(self._model_spec(), self.backend), (vad, None)]

    def setup(self) -> None:
        (spec, backend), (vad_spec, _) = self.model_specs()
        path = self.resolve_model(spec, backend).path
        vad_path = self.resolve_model(vad_spec).path
        device = self.pick_device()
        self._vad = VadModel(self.vad, vad_path, device, self.vad_step_s)
        self._info = {"backend": self.backend, "model": self._model_spec(), "path": str(path), "vad": self.vad}
        self._info["device"] = device
        if self.backend == "transformers":
            from curate.models import hf_whisper

            self._hf = hf_whisper.load(str(path), device, self.precision, self.cpu_threads)
            self._info.update(self._hf.info)
        else:
            compute = self.compute_type if self.compute_type != "auto" else ("float16" if device == "cuda" else "int8")
            self._whisper = load_whisper(str(path), device, compute, self.cpu_threads)
            self._info["compute_type"] = compute

    def unload(self) -> None:
        self._vad = self._whisper = self._hf = None

    def chunks(self, audio: np.ndarray) -> list[timeline.Interval]:
        if self.vad == "silero":
            regions = self._vad.regions(audio, self.vad_onset)
            return merge_regions(timeline.split_to_max(regions, self.chunk_s), self.chunk_s)
        return merge_chunks(self._vad.scores(audio), self.chunk_s, self.vad_onset, self.vad_offset)

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        r = ctx.recording
        audio = ctx.audio()
        chunks = [(s, min(e, audio.size / SAMPLE_RATE)) for s, e in self.chunks(audio)]
        chunks = [c for c in chunks if c[1] > c[0]]
        if self.backend == "transformers":
            from curate.stages.whisper import normalize_language

            lang_in = normalize_language(ctx.language)
            args = (self._hf, audio, chunks, lang_in, self.batch_size, self.beam_size, self.word_timestamps)
            rows, lang = transcribe_chunks_hf(*args)
        else:
            args = (self._whisper, audio, chunks, ctx.language, self.batch_size, self.beam_size, self.word_timestamps)
            rows, lang = transcribe_chunks(*args)
        kept, dropped = chunk_segments(rows, r.recording_id, r.audio_path, lang, self.emit or "")
        ctx.info.setdefault("wx_transcribe", self._info)
        return StageResult(
            kept, [RejectedSegment(s, self.stage_name, "no_transcript", detail=why) for s, why in dropped]
        )


__all__ = [
    "WxTranscribe",
    "chunk_row",
    "chunk_segments",
    "cut_and_merge",
    "load_whisper",
    "merge_chunks",
    "merge_regions",
    "transcribe_chunks",
    "transcribe_chunks_hf",
]
