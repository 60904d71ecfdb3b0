"""Whisper transcription (variant ``w-raw``): segments cut exactly at Whisper's predicted start/end times.

Three real backends give the same rows: ``faster-whisper`` (CTranslate2; a local model directory; batched
inference when ``batch_size > 1``), ``openai-whisper`` (a name or a local ``.pt``) and ``transformers``
(PyTorch, :mod:`curate.models.hf_whisper`: transformers' long-form decoding; fp16/bf16 + SDPA on GPU; a
``faster-whisper:NAME`` model means ``transformers:NAME``, the same weights converted). The model is found
through :mod:`curate.models` (local path → model store → bundled), loaded in ``setup()`` once per worker
and freed in ``teardown()``. The conversion of backend output to segment rows is pure and tested with fake
model outputs.

Long programmes are transcribed in windows of ``window_s`` (30 min by default) read from disk, so a 3 h
programme never sits in memory whole. Each non-final window drops its last segment (it may be cut by the
window edge) and the next window starts at that segment's start: Whisper's own seek, continued.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from curate.errors import ConfigError
from curate.models import COMPUTE_TYPES
from curate.registry import register
from curate.schema import RejectedSegment, Segment, Word
from curate.stages.base import ModelStage, RecordingContext, Resources, StageResult

log = logging.getLogger(__name__)

# stage backend → model backend
BACKENDS = {"faster-whisper": "faster-whisper", "openai-whisper": "whisper", "transformers": "transformers"}
LANGUAGE_NAMES = {"dutch": "nl", "flemish": "nl", "vlaams": "nl", "nederlands": "nl", "english": "en"}


# --- pure part -------------------------------------------------------------------------------------------


def normalize_language(language: str | None) -> str | None:
    """Catalog language → Whisper code: ``nl-BE`` → ``nl``, ``Dutch`` → ``nl``; empty → ``None`` (detect)."""
    if not language or not str(language).strip():
        return None
    s = str(language).strip().lower()
    if s in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[s]
    return s.replace("_", "-").split("-")[0].split(" ")[0] or None


def as_dict(raw: Any) -> dict[str, Any]:
    """A backend's segment or word (dict, dataclass or namedtuple) as a plain dict."""
    if isinstance(raw, dict):
        return raw
    if hasattr(raw, "_asdict"):
        return raw._asdict()
    return {
        k: getattr(raw, k)
        for k in (
            "start",
            "end",
            "text",
            "avg_logprob",
            "no_speech_prob",
            "compression_ratio",
            "words",
            "word",
            "probability",
        )
        if hasattr(raw, k)
    }


def _clip(t: float | None, duration_s: float) -> float | None:
    return None if t is None else min(max(float(t), 0.0), duration_s)


def _num(x: Any) -> float | None:
    """A model score as float; NaN/inf (a degenerate decode) becomes None rather than poisoning filters."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def to_segments(
    raw_segments: list[Any],
    recording_id: str,
    audio_path: str,
    duration_s: float,
    language: str | None,
    variant: str = "",
    offset_s: float = 0.0,
) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    """Backend segments (times relative to ``offset_s``) → (Segment rows, rejected with reason).

    Times are Whisper's, shifted by ``offset_s`` and clipped to ``[0, duration_s]`` (Whisper can predict
    an end past the audio); a segment empty after clipping is rejected."""
    kept, rejected = [], []
    for raw in raw_segments:
        d = as_dict(raw)
        start = _clip(offset_s + float(d["start"]), duration_s)
        end = _clip(offset_s + float(d["end"]), duration_s)
        words = None
        if d.get("words") is not None:
            words = tuple(
                Word(
                    str(w["word"]),
                    _clip(None if w.get("start") is None else offset_s + w["start"], duration_s),
                    _clip(None if w.get("end") is None else offset_s + w["end"], duration_s),
                    _num(w.get("probability")),
                )
                for w in map(as_dict, d["words"])
            )
        seg = Segment.new(
            recording_id,
            audio_path,
            start,
            max(start, end),
            variant,
            text=(d.get("text") or "").strip(),
            language=language,
            avg_logprob=_num(d.get("avg_logprob")),
            no_speech_prob=_num(d.get("no_speech_prob")),
            compression_ratio=_num(d.get("compression_ratio")),
            words=words,
        )
        if end <= start:
            rejected.append((seg, f"zero-length after clipping to the audio ({d['start']:.2f}-{d['end']:.2f} s)"))
        else:
            kept.append(seg)
    return kept, rejected


def window_cut(raw_segments: list[Any], win_start_s: float, win_end_s: float, final: bool) -> tuple[list[Any], float]:
    """(segments to keep, where the next window starts). A non-final window gives back its last segment,
    which the window edge may have cut, unless that would not advance."""
    if final or len(raw_segments) < 2:
        return raw_segments, win_end_s
    restart = win_start_s + float(as_dict(raw_segments[-1])["start"])
    if restart <= win_start_s + 1.0:
        return raw_segments, win_end_s
    return raw_segments[:-1], restart


# --- the stage -------------------------------------------------------------------------------------------


@register("whisper_transcribe")
@dataclass
class WhisperTranscribe(ModelStage):
    backend: str = "faster-whisper"  # or openai-whisper, transformers
    model: str = "faster-whisper:base"  # model spec or local path (see curate.models)
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str = "auto"  # faster-whisper: auto = int8 on CPU, float16 on GPU
    precision: str = "auto"  # transformers: auto = float32 on CPU, float16 on GPU (or bfloat16, float32)
    beam_size: int = 5
    batch_size: int = 1  # > 1: faster-whisper BatchedInferencePipeline over fixed 30 s windows
    cpu_threads: int = 0  # faster-whisper intra-op threads (0: its default); torch threads for openai
    word_timestamps: bool = False
    condition_on_previous_text: bool = True
    temperature_fallback: bool = True  # retry at 0.2 … 1.0 when a decode fails Whisper's checks
    vad_filter: bool = False  # w-raw is Whisper's own segmentation: no VAD
    max_new_tokens: int | None = None  # cap tokens per 30 s window (openai: sample_len)
    window_s: float = 1800.0  # read and transcribe long audio in windows this long (0: whole file)
    gpus: float | None = None  # per worker; default 1 when device is cuda/auto, else 0
    cpus: float = 1.0
    model_store: str | None = None  # default $CURATE_MODELS
    allow_download: bool = False

    def _model_spec(self) -> str:
        from curate.models.hf_whisper import spec_for_backend

        return spec_for_backend(self.model, BACKENDS[self.backend])

    def validate(self) -> None:
        from curate.models import parse_spec
        from curate.models.hf_whisper import PRECISIONS

        if self.backend not in BACKENDS:
            raise ConfigError(f"whisper_transcribe.backend must be one of {sorted(BACKENDS)}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"whisper_transcribe.precision must be one of {PRECISIONS}, got {self.precision!r}")
        try:
            spec = parse_spec(self._model_spec(), BACKENDS[self.backend])
        except ValueError as e:
            raise ConfigError(f"whisper_transcribe.model: {e}") from None
        if spec.backend not in (None, BACKENDS[self.backend]):
            raise ConfigError(
                f"whisper_transcribe: model {self.model!r} is a {spec.backend} model but backend is {self.backend!r}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"whisper_transcribe.device must be auto, cpu or cuda, got {self.device!r}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"whisper_transcribe.compute_type must be one of {COMPUTE_TYPES}")
        if self.beam_size < 1 or self.batch_size < 1 or self.cpu_threads < 0:
            raise ConfigError("whisper_transcribe: beam_size and batch_size must be >= 1, cpu_threads >= 0")
        if self.batch_size > 1 and self.backend == "openai-whisper":
            raise ConfigError("whisper_transcribe.batch_size > 1 needs backend faster-whisper or transformers")
        if self.window_s and self.window_s < 60:
            raise ConfigError(f"whisper_transcribe.window_s must be 0 (whole file) or >= 60, got {self.window_s}")

    def model_specs(self) -> list[tuple[str, str | None]]:
        return [(self._model_spec(), BACKENDS[self.backend])]

    @property
    def resources(self) -> Resources:  # type: ignore[override]
        gpus = self.gpus if self.gpus is not None else (0.0 if self.device == "cpu" else 1.0)
        return Resources(cpus=self.cpus, gpus=gpus, batch_size=self.batch_size)

    def __getstate__(self) -> dict[str, Any]:  # a loaded model never travels: workers load their own
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_rt")}

    # -- model lifecycle --

    def pick_device(self) -> str:
        if self.device == "auto" and self.backend == "faster-whisper":  # CTranslate2 sees GPUs without torch
            import ctranslate2

            return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        return super().pick_device()

    def setup(self) -> None:
        if getattr(self, "_rt_model", None) is not None:
            return
        from importlib import metadata

        ((spec, backend),) = self.model_specs()
        resolved = self.resolve_model(spec, backend)
        device = self.pick_device()
        info: dict[str, Any] = {
            "backend": self.backend,
            "model": self.model,
            "model_path": str(resolved.path),
            "model_source": resolved.source,
            "device": device,
        }
        if self.backend == "faster-whisper":
            from faster_whisper import BatchedInferencePipeline, WhisperModel

            ct = self.compute_type if self.compute_type != "auto" else ("float16" if device == "cuda" else "int8")
            model = WhisperModel(str(resolved.path), device=device, compute_type=ct, cpu_threads=self.cpu_threads)
            self._rt_pipe = BatchedInferencePipeline(model) if self.batch_size > 1 else model
            info.update(compute_type=ct, version=metadata.version("faster-whisper"))
        elif self.backend == "transformers":
            from curate.models import hf_whisper

            model = self._rt_pipe = hf_whisper.load(str(resolved.path), device, self.precision, self.cpu_threads)
            info.update(model.info, version=metadata.version("transformers"))
        else:
            import torch
            import whisper

            if self.cpu_threads:
                torch.set_num_threads(self.cpu_threads)
            path = resolved.path
            if path.is_dir():
                pts = sorted(path.glob("*.pt"))
                if not pts:
                    raise FileNotFoundError(f"{path}: no openai-whisper .pt checkpoint in this model directory")
                path = pts[0]
            model = whisper.load_model(str(path), device=device)
            self._rt_pipe = model
            info.update(version=metadata.version("openai-whisper"), dims=dict(vars(model.dims)))
        self._rt_model = model
        self._rt_info = info
        log.info("whisper_transcribe: loaded %s (%s) on %s", self.model, resolved.path, device)

    def unload(self) -> None:
        self._rt_model = self._rt_pipe = None

    # -- transcription --

    def _temperatures(self) -> tuple[float, ...]:
        return (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if self.temperature_fallback else (0.0,)

    def transcribe(self, audio: Any, language: str | None) -> tuple[list[Any], str | None]:
        """One array → (backend segments with times relative to it, language used or detected)."""
        if self.backend == "faster-whisper":
            kw: dict[str, Any] = dict(
                language=language,
                beam_size=self.beam_size,
                word_timestamps=self.word_timestamps,
                condition_on_previous_text=self.condition_on_previous_text,
                vad_filter=self.vad_filter,
                temperature=list(self._temperatures()),
                max_new_tokens=self.max_new_tokens,
            )
            if self.batch_size > 1:
                kw.update(batch_size=self.batch_size, without_timestamps=False)
                kw.pop("condition_on_previous_text")
                if not self.vad_filter:  # fixed 30 s windows; Whisper predicts the times inside each
                    dur = len(audio) / 16000
                    kw["clip_timestamps"] = [
                        {"start": s, "end": min(s + 30.0, dur)} for s in range(0, int(dur + 30), 30) if s < dur
                    ]
            segs, info = self._rt_pipe.transcribe(audio, **kw)
            return list(segs), info.language
        if self.backend == "transformers":
            from curate.models.hf_whisper import transcribe_long

            return transcribe_long(
                self._rt_model,
                audio,
                language,
                self.beam_size,
                self.condition_on_previous_text,
                self._temperatures(),
                self.word_timestamps,
                self.max_new_tokens,
                self.batch_size,
            )
        import whisper

        opts: dict[str, Any] = dict(
            language=language,
            word_timestamps=self.word_timestamps,
            condition_on_previous_text=self.condition_on_previous_text,
            temperature=self._temperatures(),
            fp16=self._rt_info["device"] == "cuda",
            beam_size=self.beam_size if self.beam_size > 1 else None,
            verbose=None,
        )
        if self.max_new_tokens:
            opts["sample_len"] = self.max_new_tokens
        result = whisper.transcribe(self._rt_model, audio, **opts)
        return result["segments"], result.get("language")

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        self.setup()
        rec = ctx.recording
        language = normalize_language(ctx.language)
        kept: list[Segment] = []
        rejected: list[RejectedSegment] = []
        start, dur = 0.0, rec.duration_s
        window = self.window_s if self.window_s and dur > self.window_s else dur
        while start < dur - 1e-3:
            end = min(start + window, dur)
            final = end >= dur - 1e-3
            audio = ctx.audio() if (start == 0.0 and final) else ctx.read(start, end)
            raw, lang = self.transcribe(audio, language)
            raw, nxt = window_cut(raw, start, end, final)
            language = language or lang  # detect once per recording, then keep it
            segs, bad = to_segments(
                raw, rec.recording_id, rec.audio_path, dur, lang or language, self.emit or "", start
            )
            kept += segs
            rejected += [RejectedSegment(s, self.stage_name, "zero_length", detail=r) for s, r in bad]
            start = nxt
        ctx.info.setdefault(self.stage_name, self._rt_info)
        return StageResult(kept, rejected)


__all__ = ["WhisperTranscribe", "as_dict", "normalize_language", "to_segments", "window_cut"]
