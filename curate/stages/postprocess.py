"""Post-processing of transcribed segments (thesis §6: Whisper → w-pp-1s / w-pp-3s; WhisperX → wx-diar-*).

Pure functions over a recording's segments, each wrapped by a small registered stage. The Whisper
variants apply them in this order: ``drop_phrases`` → ``merge_punctuation`` → ``min_duration`` →
``split_long``; WhisperX diarization uses ``merge_speaker`` instead of ``merge_punctuation``.
Every dropped segment comes back as a :class:`~curate.schema.RejectedSegment` with its rule.

Decisions at the edges (see docs/whisper.md):

- phrases match the *whole* transcript, case-insensitively, after trimming whitespace and any leading or
  trailing non-alphanumeric characters (so ``[Muziek]``, ``(applaus)``, ``*muziek*``, ``Muziek.`` match
  ``muziek``); a transcript with no letter or digit at all (``***``, ``.``, ``♪``, empty) is always dropped.
- a sentence ends in ``.``, ``?`` or ``!`` (closing quotes/brackets after it are ignored); ``...`` and ``…``
  do NOT end one: Whisper marks a sentence cut at a window edge that way.
- gaps: segments merge when ``next.start_s - cur.end_s <= max_gap_s`` (a gap of exactly 3 s merges).
- a last segment that never reaches a sentence end is kept as it is.
- merged quality scores (``avg_logprob``, ``no_speech_prob``, ``compression_ratio``) are duration-weighted
  means of the parts; ``words`` concatenate (None if any part has none); text joins with one space.
- ``min_duration`` keeps a segment of exactly ``min_s``.
- ``split_long`` halves recursively (95 s, 30 → four 23.75 s); words go to the half holding their
  midpoint and the text is rebuilt from them; without word timestamps the halves get ``text=None``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from curate import timeline
from curate.errors import ConfigError
from curate.registry import register
from curate.schema import RejectedSegment, Segment, Word
from curate.stages.base import RecordingContext, StageResult, Transform

PHRASE_DIR = Path(__file__).with_name("phrases")
SENTENCE_END = (".", "?", "!")
_CLOSERS = "\"'”’»)]}"
_SCORES = ("avg_logprob", "no_speech_prob", "compression_ratio")


# --- a. drop phrases ------------------------------------------------------------------------------------


def normalize_text(text: str | None) -> str:
    """Casefold, collapse whitespace, strip leading/trailing characters that are not letters or digits."""
    if not text:
        return ""
    s = " ".join(text.casefold().split())

    def alnum(c: str) -> bool:
        return unicodedata.category(c)[0] in "LN"

    i, j = 0, len(s)
    while i < j and not alnum(s[i]):
        i += 1
    while j > i and not alnum(s[j - 1]):
        j -= 1
    return s[i:j]


@cache
def language_phrases(language: str) -> frozenset[str]:
    """The shipped phrase list of a language (``phrases/<lang>.txt``), normalized; empty if none ships."""
    path = PHRASE_DIR / f"{language}.txt"
    if not path.is_file():
        return frozenset()
    lines = (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines())
    return frozenset(n for ln in lines if ln and not ln.startswith("#") and (n := normalize_text(ln)))


def shipped_languages() -> list[str]:
    return sorted(p.stem for p in PHRASE_DIR.glob("*.txt"))


def phrase_reason(text: str | None, phrases: Iterable[str]) -> str | None:
    """Why a transcript is a non-speech phrase (``None`` to keep it)."""
    norm = normalize_text(text)
    if not norm:
        return "empty transcript" if not (text or "").strip() else f"no words ({(text or '').strip()!r})"
    if norm in phrases:
        return f"non-speech phrase {norm!r}"
    return None


def drop_phrases(
    segments: list[Segment], phrases_for: Callable[[Segment], frozenset[str]]
) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    kept, dropped = [], []
    for s in segments:
        reason = phrase_reason(s.text, phrases_for(s))
        if reason:
            dropped.append((s, reason))
        else:
            kept.append(s)
    return kept, dropped


# --- b./c. merging ---------------------------------------------------------------------------------------


def ends_sentence(text: str | None) -> bool:
    """Ends in ``.``, ``?`` or ``!`` (ignoring closing quotes/brackets), but not in an ellipsis."""
    s = (text or "").rstrip().rstrip(_CLOSERS).rstrip()
    if s.endswith(("...", "…")):
        return False
    return s.endswith(SENTENCE_END)


def _weighted(parts: list[Segment], name: str) -> float | None:
    vals = [(getattr(p, name), p.duration_s) for p in parts]
    if any(v is None for v, _ in vals):
        return None
    total = sum(d for _, d in vals)
    return sum(v * d for v, d in vals) / total if total > 0 else vals[0][0]


def merge_group(parts: list[Segment]) -> Segment:
    """One segment spanning ``parts`` (in time order): text joined, words concatenated, scores weighted."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    texts = [p.text.strip() for p in parts if p.text and p.text.strip()]
    words = None if any(p.words is None for p in parts) else tuple(w for p in parts for w in p.words or ())
    speakers = {p.speaker for p in parts}
    languages = [p.language for p in parts if p.language]
    return first.with_times(
        first.start_s,
        max(p.end_s for p in parts),
        text=" ".join(texts) if texts else None,
        words=words,
        speaker=first.speaker if len(speakers) == 1 else None,
        language=languages[0] if languages else None,
        **{k: _weighted(parts, k) for k in _SCORES},
    )


def merge_runs(
    segments: list[Segment], joins: Callable[[list[Segment], Segment], bool], max_gap_s: float
) -> list[Segment]:
    """Merge each segment into the group before it while ``joins(group, next)`` holds and the gap is at
    most ``max_gap_s``."""
    out: list[Segment] = []
    group: list[Segment] = []
    for s in sorted(segments, key=lambda x: (x.start_s, x.end_s)):
        if group and s.start_s - max(g.end_s for g in group) <= max_gap_s and joins(group, s):
            group.append(s)
            continue
        if group:
            out.append(merge_group(group))
        group = [s]
    if group:
        out.append(merge_group(group))
    return out


def merge_punctuation(segments: list[Segment], max_gap_s: float = 3.0) -> list[Segment]:
    """Merge a segment that does not end a sentence with the next, repeatedly, until one does."""

    def joins(group: list[Segment], nxt: Segment) -> bool:
        last = group[-1].text
        return last is not None and not ends_sentence(last)

    return merge_runs(segments, joins, max_gap_s)


def merge_speaker(segments: list[Segment], max_gap_s: float = 3.0) -> list[Segment]:
    """Merge consecutive segments of the same speaker; a segment without a speaker never merges."""

    def joins(group: list[Segment], nxt: Segment) -> bool:
        return nxt.speaker is not None and group[-1].speaker == nxt.speaker

    return merge_runs(segments, joins, max_gap_s)


# --- d./e. length rules ----------------------------------------------------------------------------------


def min_duration(segments: list[Segment], min_s: float) -> tuple[list[Segment], list[Segment]]:
    """(kept, too short): a segment of exactly ``min_s`` is kept."""
    kept = [s for s in segments if s.duration_s >= min_s - 1e-9]
    short = [s for s in segments if s.duration_s < min_s - 1e-9]
    return kept, short


def join_words(words: Iterable[Word]) -> str:
    """Text from words: faster/openai-whisper words carry their leading space, WhisperX words do not."""
    return "".join(w.word if w.word[:1].isspace() else " " + w.word for w in words).strip()


def split_long(segments: list[Segment], max_s: float = 30.0) -> list[Segment]:
    """Halve every segment longer than ``max_s``, recursively, until each part is at most ``max_s``."""
    out = []
    for s in segments:
        parts = timeline.halve((s.start_s, s.end_s), max_s)
        if len(parts) == 1:
            out.append(s)
            continue
        if s.words is None:
            out += [s.with_times(a, b, text=None) for a, b in parts]
            continue
        buckets: list[list[Word]] = [[] for _ in parts]
        prev = s.start_s
        for w in s.words:  # a word goes to the part that holds its midpoint (untimed: its predecessor's part)
            start = w.start_s if w.start_s is not None else prev
            mid = (start + (w.end_s if w.end_s is not None else start)) / 2
            prev = start
            buckets[max([i for i, (a, _) in enumerate(parts) if a <= mid] or [0])].append(w)
        out += [
            s.with_times(a, b, words=tuple(ws), text=join_words(ws) or None)
            for (a, b), ws in zip(parts, buckets, strict=True)
        ]
    return out


# --- stages ----------------------------------------------------------------------------------------------


def _reject(
    stage: str, reason: str, items: Iterable[tuple[Segment, str]], score: bool = False
) -> list[RejectedSegment]:
    """Rejected rows with one closed-set ``reason``, the item's text as ``detail`` (``score``: the duration)."""
    return [RejectedSegment(s, stage, reason, s.duration_s if score else None, why) for s, why in items]


@register("drop_phrases")
@dataclass
class DropPhrases(Transform):
    """Drop segments whose whole transcript is a non-speech phrase (``[Muziek]``, ``applaus`` …) or empty."""

    language_lists: bool = True  # use phrases/<language>.txt for the segment's language
    phrases: list[str] = field(default_factory=list)  # extra phrases, for every language

    def phrases_for(self, language: str | None) -> frozenset[str]:
        extra = frozenset(n for p in self.phrases if (n := normalize_text(p)))
        if not self.language_lists:
            return extra
        lang = (language or "").lower().replace("_", "-").split("-")[0]
        if lang in shipped_languages():
            return language_phrases(lang) | extra
        return frozenset().union(*(language_phrases(x) for x in shipped_languages())) | extra

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        kept, dropped = drop_phrases(segments, lambda s: self.phrases_for(s.language or ctx.language))
        return StageResult(kept, _reject(self.stage_name, "phrase", dropped))


@dataclass
class _GapMerge(Transform):
    max_gap_s: float = 3.0

    def validate(self) -> None:
        if self.max_gap_s < 0:
            raise ConfigError(f"{self.stage_name}.max_gap_s must be >= 0, got {self.max_gap_s}")


@register("merge_punctuation")
@dataclass
class MergePunctuation(_GapMerge):
    """Merge segments until a transcript ends a sentence (``.``, ``?``, ``!``; not ``...``)."""

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        return StageResult(merge_punctuation(segments, self.max_gap_s))


@register("merge_speaker")
@dataclass
class MergeSpeaker(_GapMerge):
    """Merge consecutive segments of the same diarized speaker."""

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        return StageResult(merge_speaker(segments, self.max_gap_s))


@register("min_duration")
@dataclass
class MinDuration(Transform):
    """Drop segments shorter than ``min_s`` (1 → w-pp-1s, 3 → w-pp-3s)."""

    min_s: float = 1.0

    def validate(self) -> None:
        if self.min_s < 0:
            raise ConfigError(f"min_duration.min_s must be >= 0, got {self.min_s}")

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        kept, short = min_duration(segments, self.min_s)
        return StageResult(
            kept,
            _reject(
                self.stage_name,
                "too_short",
                ((s, f"shorter than {self.min_s:g} s ({s.duration_s:.2f} s)") for s in short),
                score=True,
            ),
        )


@register("split_long")
@dataclass
class SplitLong(Transform):
    """Halve segments longer than ``max_s``, recursively, until every part is at most ``max_s``."""

    max_s: float = 30.0

    def validate(self) -> None:
        if self.max_s <= 0:
            raise ConfigError(f"split_long.max_s must be > 0, got {self.max_s}")

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        return StageResult(split_long(segments, self.max_s))


__all__ = [
    "DropPhrases",
    "MergePunctuation",
    "MergeSpeaker",
    "MinDuration",
    "SplitLong",
    "drop_phrases",
    "ends_sentence",
    "join_words",
    "language_phrases",
    "merge_group",
    "merge_punctuation",
    "merge_runs",
    "merge_speaker",
    "min_duration",
    "normalize_text",
    "phrase_reason",
    "split_long",
]
