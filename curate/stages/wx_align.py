"""WhisperX alignment (variant ``wx-align``): word times from a wav2vec2 CTC model, then one segment per
sentence.

For every ``wx-asr`` chunk, the transcript is force-aligned to the chunk's audio with a character-level
wav2vec2 CTC model (Viterbi over the CTC trellis; whisperx's ``get_trellis``/``backtrack``/``merge_repeats``),
giving each word a start and end. The chunk is then split into sentences, each becoming a segment that
spans its first word's start to its last word's end.

Words the aligner cannot time (digits, symbols: no character of them is in the model's vocabulary) get times
interpolated from their neighbours (previous word's end, next word's start, else the chunk bounds), so a
boundary is never ``None``/NaN and always lies inside its chunk.

When no alignment model is available (the Dutch default ``jonatasgrosman/wav2vec2-large-xlsr-53-dutch`` is
not on PyPI), ``fallback: whisper_words`` uses the word times Whisper gave in ``wx_transcribe`` instead, and
records that in ``run.json`` (``stage_info.wx_align``); ``fallback: error`` fails instead.

Sentences are split by :func:`split_sentences`, a punctuation rule with per-language abbreviation lists
(no NLTK data, nothing downloaded at run time).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from curate.audio import SAMPLE_RATE
from curate.errors import ConfigError
from curate.registry import register
from curate.schema import Segment, Word
from curate.stages.base import ModelStage, RecordingContext, Resources, StageResult

log = logging.getLogger(__name__)

DEFAULT_MODEL = "wav2vec2:jonatasgrosman/wav2vec2-large-xlsr-53-dutch"
FALLBACKS = ("whisper_words", "error")

# Words ending in '.' that do not end a sentence (lower case, with the dot).
ABBREVIATIONS = {
    "nl": {
        "dhr.",
        "mevr.",
        "mw.",
        "dr.",
        "drs.",
        "ir.",
        "ing.",
        "prof.",
        "mr.",
        "bijv.",
        "bv.",
        "b.v.",
        "o.a.",
        "m.a.w.",
        "d.w.z.",
        "i.p.v.",
        "t.o.v.",
        "enz.",
        "etc.",
        "ca.",
        "nr.",
        "blz.",
        "jl.",
        "st.",
        "evt.",
        "m.b.t.",
        "z.g.a.n.",
        "n.a.v.",
        "a.s.",
        "jr.",
        "sr.",
        "vs.",
        "resp.",
        "incl.",
        "excl.",
        "min.",
        "max.",
    },
    "en": {
        "mr.",
        "mrs.",
        "ms.",
        "dr.",
        "prof.",
        "st.",
        "jr.",
        "sr.",
        "vs.",
        "etc.",
        "e.g.",
        "i.e.",
        "no.",
        "inc.",
        "ltd.",
        "co.",
        "corp.",
        "approx.",
        "dept.",
        "u.s.",
        "u.k.",
        "a.m.",
        "p.m.",
        "mt.",
        "ft.",
    },
}
_END = re.compile(r"[.!?…]+[\"'”’)\]]*$")


def split_sentences(words: list[str], language: str | None = "nl") -> list[tuple[int, int]]:
    """Sentence spans ``[i, j)`` over ``words``: a sentence ends at a word ending in ``.``, ``!``, ``?`` or
    ``…`` (closing quotes/brackets allowed) unless it is a known abbreviation or a single-letter initial."""
    abbrev = ABBREVIATIONS.get((language or "nl")[:2], set()) | ABBREVIATIONS["en"]
    spans, start = [], 0
    for i, w in enumerate(words):
        lw = w.lower()
        if not _END.search(lw) or lw in abbrev or re.fullmatch(r"[a-z]\.", lw):
            continue
        spans.append((start, i + 1))
        start = i + 1
    if start < len(words):
        spans.append((start, len(words)))
    return spans


def interpolate_times(
    times: list[tuple[float | None, float | None]], lo: float, hi: float
) -> list[tuple[float, float]]:
    """Fill untimed words: start = previous timed end (else ``lo``), end = next timed start (else ``hi``).
    Output is monotonic, inside ``[lo, hi]``, never NaN."""

    def ok(x: float | None) -> bool:
        return x is not None and math.isfinite(x)

    n = len(times)
    prev_end, out = [lo] * n, []
    last = lo
    for i, (_, e) in enumerate(times):
        prev_end[i] = last
        if ok(e):
            last = e
    next_start, nxt = [hi] * n, hi
    for i in range(n - 1, -1, -1):
        next_start[i] = nxt
        s = times[i][0]
        if ok(s):
            nxt = s
    cur = lo
    for i, (s, e) in enumerate(times):
        s2 = s if ok(s) else prev_end[i]
        e2 = e if ok(e) else max(s2, next_start[i])
        s2 = min(max(s2, cur, lo), hi)
        e2 = min(max(e2, s2), hi)
        out.append((s2, e2))
        cur = s2
    return out


def _vocab(tokenizer: Any) -> tuple[dict[str, int], int, str | None]:
    vocab = {k.lower(): v for k, v in tokenizer.get_vocab().items()}
    blank = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else vocab.get("<pad>", vocab.get("[pad]", 0))
    delim = getattr(tokenizer, "word_delimiter_token", None) or "|"
    return vocab, int(blank), (delim if delim in vocab else None)


def ctc_word_times(
    emission: Any,
    words: list[str],
    vocab: dict[str, int],
    blank: int,
    delim: str | None,
    offset_s: float,
    sec_per_frame: float,
) -> list[tuple[float | None, float | None, float | None]] | None:
    """(start_s, end_s, score) per word from a log-softmax emission ``(frames, vocab)``; ``None`` entries for
    words with no character in ``vocab``. Returns ``None`` when the transcript does not fit the audio."""
    from whisperx.alignment import backtrack, get_trellis, merge_repeats

    chars: list[str] = []
    owner: list[int] = []  # word index of each char, -1 for delimiters
    for wi, w in enumerate(words):
        cs = [c for c in w.lower() if c in vocab and c != delim]
        if not cs:
            continue
        if chars and delim is not None:
            chars.append(delim)
            owner.append(-1)
        chars += cs
        owner += [wi] * len(cs)
    out: list[tuple[float | None, float | None, float | None]] = [(None, None, None)] * len(words)
    if not chars or len(chars) > emission.shape[0]:
        return out if not chars else None
    tokens = [vocab[c] for c in chars]
    path = backtrack(get_trellis(emission, tokens, blank), emission, tokens, blank)
    if path is None:
        return None
    spans: dict[int, list[tuple[int, int, float]]] = {}
    for seg, wi in zip(merge_repeats(path, chars), owner, strict=True):
        if wi >= 0:
            spans.setdefault(wi, []).append((seg.start, seg.end, seg.score))
    for wi, sp in spans.items():
        out[wi] = (
            offset_s + sp[0][0] * sec_per_frame,
            offset_s + sp[-1][1] * sec_per_frame,
            float(np.mean([s for _, _, s in sp])),
        )
    return out


def sentence_segments(seg: Segment, words: list[Word], language: str | None) -> list[Segment]:
    """One segment per sentence of ``seg``'s timed ``words``; boundaries = first start / last end, inside
    the chunk."""
    out = []
    for i, j in split_sentences([w.word for w in words], language):
        ws = words[i:j]
        s = min(max(ws[0].start_s, seg.start_s), seg.end_s)
        e = min(max(ws[-1].end_s, s), seg.end_s)
        if e <= s:  # a zero-length sentence (e.g. only untimeable tokens at the chunk end): keep a sliver
            continue
        out.append(seg.with_times(s, e, text=" ".join(w.word for w in ws), words=tuple(ws)))
    return out


def whisper_words(seg: Segment) -> list[Word] | None:
    """Whisper's own word times of a chunk (``wx_transcribe`` with ``word_timestamps``), made monotonic."""
    if not seg.words:
        return None
    times = interpolate_times([(w.start_s, w.end_s) for w in seg.words], seg.start_s, seg.end_s)
    return [Word(w.word, s, e, w.score) for w, (s, e) in zip(seg.words, times, strict=True)]


class Aligner:
    """A wav2vec2 CTC model + its tokenizer from a local directory (``save_pretrained`` layout)."""

    def __init__(self, path: str, device: str = "cpu"):
        import torch
        from transformers import AutoFeatureExtractor, AutoTokenizer, Wav2Vec2ForCTC

        try:
            self.model = Wav2Vec2ForCTC.from_pretrained(path).to(device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise RuntimeError(f"{path}: not a wav2vec2 CTC model directory with a tokenizer ({e})") from e
        try:
            self.normalize = bool(AutoFeatureExtractor.from_pretrained(path).do_normalize)
        except (OSError, ValueError, AttributeError):
            self.normalize = True
        self.device, self.torch = device, torch
        self.vocab, self.blank, self.delim = _vocab(self.tokenizer)

    def words(self, audio: np.ndarray, seg: Segment) -> list[Word] | None:
        torch = self.torch
        x = audio[int(seg.start_s * SAMPLE_RATE) : int(seg.end_s * SAMPLE_RATE)].astype(np.float32)
        if x.size < 400:
            x = np.pad(x, (0, 400 - x.size))
        if self.normalize:
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(x)[None].to(self.device)).logits
            emission = torch.log_softmax(logits.float(), dim=-1)[0].cpu()
        sec_per_frame = (seg.end_s - seg.start_s) / max(emission.shape[0], 1) if x.size > 400 else 0.02
        tokens = (seg.text or "").split()
        timed = ctc_word_times(emission, tokens, self.vocab, self.blank, self.delim, seg.start_s, sec_per_frame)
        if timed is None:
            return None
        times = interpolate_times([(s, e) for s, e, _ in timed], seg.start_s, seg.end_s)
        return [Word(w, s, e, sc) for w, (s, e), (_, _, sc) in zip(tokens, times, timed, strict=True)]


@register("wx_align")
@dataclass
class WxAlign(ModelStage):
    """Chunk transcripts → word times (wav2vec2 CTC, or Whisper's as a fallback) → one segment per sentence."""

    model: str = DEFAULT_MODEL  # wav2vec2:<hub name> (from the model store) or a local directory
    fallback: str = "whisper_words"  # whisper_words | error: what to do when the model is not available
    device: str = "auto"
    model_store: str | None = None

    resources = Resources(cpus=1, gpus=1)

    def validate(self) -> None:
        if self.fallback not in FALLBACKS:
            raise ConfigError(f"wx_align.fallback must be one of {FALLBACKS}, got {self.fallback!r}")

    def model_specs(self) -> list[tuple[str, str | None]]:
        return [(self.model, "wav2vec2")] if self.fallback == "error" else []  # else a missing model falls back

    def setup(self) -> None:
        from curate.models import ModelNotFoundError

        self._aligner, self._reason = None, None
        try:
            path = self.resolve_model(self.model, "wav2vec2").path
        except ConfigError as e:
            if self.fallback == "error" or not isinstance(e.__cause__, ModelNotFoundError):
                raise
            self._reason = f"alignment model not available: {e.__cause__}"
            log.warning("wx_align: %s; using Whisper's word timestamps instead", self._reason.split(":")[0])
            return
        self._aligner = Aligner(str(path), self.pick_device())

    def unload(self) -> None:
        self._aligner = None

    def method(self) -> str:
        return "wav2vec2" if self._aligner is not None else "whisper_words"

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        info = ctx.info.setdefault(
            "wx_align",
            {
                "method": self.method(),
                "model": self.model,
                "fallback_reason": self._reason,
                "chunks_unaligned": 0,
                "device": self._aligner.device if self._aligner is not None else "cpu",  # DTW words: numpy
            },
        )
        audio = ctx.audio() if self._aligner is not None else None
        out: list[Segment] = []
        for seg in segments:
            words = self._aligner.words(audio, seg) if self._aligner is not None else None
            if words is None:
                words = whisper_words(seg)
            if not words:  # nothing to split on: keep the chunk as it is
                info["chunks_unaligned"] = info.get("chunks_unaligned", 0) + 1
                out.append(replace(seg, variant=self.emit or seg.variant))
                continue
            out += sentence_segments(seg, words, seg.language or ctx.language)
        return StageResult(out)


__all__ = [
    "WxAlign",
    "Aligner",
    "split_sentences",
    "interpolate_times",
    "ctc_word_times",
    "sentence_segments",
    "whisper_words",
    "DEFAULT_MODEL",
]
