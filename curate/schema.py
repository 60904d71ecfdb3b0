"""Every record shape of a run directory, and the Arrow schemas derived from them.

This is the one place where a manifest's columns are defined. Times are float64 seconds in fields ending
in ``_s``; ids are deterministic; records are immutable. Bump ``SCHEMA_VERSION`` whenever a column is
added, removed or changes type: readers refuse files written with another version, except that files of an
older version whose columns are a subset (v1 segments, before the quality columns) are read with the missing
nullable columns empty (see :data:`UPGRADABLE`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 3  # v2: the segment quality columns and the frame-score kinds; v3: rejected score, detail
SCHEMA_VERSION_KEY = b"curate.schema_version"
KIND_KEY = b"curate.kind"


@dataclass(frozen=True)
class Word:
    word: str
    start_s: float | None = None
    end_s: float | None = None
    score: float | None = None


@dataclass(frozen=True)
class Recording:
    """One catalog row after probing its audio."""

    recording_id: str
    audio_path: str  # absolute
    duration_s: float
    sample_rate: int
    num_channels: int
    codec: str | None = None
    title: str | None = None
    summary: str | None = None
    genre: str | None = None
    published: str | None = None  # ISO 8601 as given, normalised to YYYY-MM-DD[THH:MM:SS]
    language: str | None = None
    metadata: str | None = None  # JSON object of every other catalog column
    content: str | None = None  # the file's content fingerprint at ingest (curate.audio.content_fingerprint)


@dataclass(frozen=True)
class Decision:
    recording_id: str
    kept: bool
    stage: str
    reason: str | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Failure:
    recording_id: str
    stage: str
    error_type: str
    message: str
    audio_path: str | None = None
    severity: str = "error"  # "error": the recording was lost at this stage; "warning": it went on


@dataclass(frozen=True)
class Segment:
    """A view into a recording: ``[start_s, end_s)`` of ``audio_path``."""

    segment_id: str
    recording_id: str
    audio_path: str
    start_s: float
    end_s: float
    duration_s: float
    variant: str
    text: str | None = None
    language: str | None = None
    speaker: str | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    words: tuple[Word, ...] | None = None
    # quality columns (schema v2), filled from the frame scores by the ``clean_*`` stages; None = not measured
    speech_ratio: float | None = None  # share of the segment's time tagged speech
    music_ratio: float | None = None  # … tagged music (instrumental or sung, with or without speech over it)
    vocal_music_ratio: float | None = None  # … tagged singing / vocal music
    noise_ratio: float | None = None  # … tagged noise (applause, laughter, crowd, traffic …)
    overlap_ratio: float | None = None  # … with two or more speakers at once
    speaker_change: bool | None = None  # a speaker turn inside the segment
    snr_db: float | None = None  # speech-to-background estimate from frame energies

    @staticmethod
    def make_id(recording_id: str, start_s: float, end_s: float) -> str:
        return f"{recording_id}_{round(start_s * 1000):08d}_{round(end_s * 1000):08d}"

    @classmethod
    def new(
        cls, recording_id: str, audio_path: str, start_s: float, end_s: float, variant: str = "", **kw: Any
    ) -> Segment:
        start_s, end_s = float(start_s), float(end_s)
        return cls(
            segment_id=cls.make_id(recording_id, start_s, end_s),
            recording_id=recording_id,
            audio_path=audio_path,
            start_s=start_s,
            end_s=end_s,
            duration_s=end_s - start_s,
            variant=variant,
            **kw,
        )

    def with_times(self, start_s: float, end_s: float, **kw: Any) -> Segment:
        """A copy with new boundaries (id and duration follow); other fields can be overridden too."""
        return dataclasses.replace(
            self,
            segment_id=self.make_id(self.recording_id, start_s, end_s),
            start_s=float(start_s),
            end_s=float(end_s),
            duration_s=float(end_s) - float(start_s),
            **kw,
        )


#: why a stage dropped (part of) a segment: a closed set, so time cut can be summed per reason
REJECT_REASONS: dict[str, str] = {
    "music": "music under or instead of speech (clean_trim)",
    "vocal_music": "singing (clean_trim)",
    "noise": "noise events: applause, laughter, traffic … (clean_trim)",
    "overlap": "a second voice at the same time (clean_trim)",
    "no_speech": "a long run without speech (clean_trim)",
    "too_short": "shorter than the minimum length (min_duration, sad_segment, cut_repeats leftovers)",
    "repeat": "a repeated excerpt: jingle, advert, rerun (cut_repeats)",
    "phrase": "an empty transcript or a non-speech phrase (drop_phrases)",
    "no_transcript": "the recogniser found no words (wx_transcribe)",
    "zero_length": "empty after clipping to the audio (whisper_transcribe)",
    "partial_window": "the last window shorter than the others (naive_segment)",
}


@dataclass(frozen=True)
class RejectedSegment:
    """A segment a stage dropped: the rule (``reason``, one of :data:`REJECT_REASONS`), the deciding score where
    there is one (e.g. the mean music score of the cut part), and free text for people (``detail``)."""

    segment: Segment
    stage: str
    reason: str
    score: float | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS:
            raise ValueError(
                f"{self.stage}: rejection reason {self.reason!r} is not one of {', '.join(REJECT_REASONS)} "
                "(curate.schema.REJECT_REASONS; put free text in detail=)"
            )


@dataclass(frozen=True)
class MaterializedSegment:
    """One row of a materialized directory's ``index.parquet`` (``curate materialize``): where a segment's
    16 kHz mono samples are. pcm16: ``shard`` is a file under ``shards/`` and ``offset`` the sample offset
    into it; flac: ``shard`` is the audio file's path relative to the directory and ``offset`` is 0."""

    segment_id: str
    recording_id: str
    shard: str
    offset: int
    num_samples: int
    sample_rate: int
    start_s: float
    end_s: float
    duration_s: float
    text: str | None
    speaker: str | None
    language: str | None
    variant: str


@dataclass(frozen=True)
class Fingerprint:
    """A recording's Chromaprint fingerprint (``curate.models.fingerprint``): ``num_items`` raw 32-bit
    sub-fingerprints, one every ``item_s`` seconds, stored as little-endian uint32 bytes."""

    recording_id: str
    item_s: float
    num_items: int
    algorithm: int
    fingerprint: bytes


@dataclass(frozen=True)
class Probe:
    """One distinct audio file's probe, as ingest checkpoints it (``_progress/probes``): its header info, or the
    decode error (``error_path``: the path the error names, ``error``: the problem) every row using it reports."""

    key: str
    duration_s: float | None = None
    sample_rate: int | None = None
    num_channels: int | None = None
    codec: str | None = None
    header_duration_s: float | None = None
    error_path: str | None = None
    error: str | None = None
    content: str | None = None  # the file's content fingerprint (curate.audio.content_fingerprint)


@dataclass(frozen=True)
class Repeat:
    """An excerpt of ``recording_id`` (``[start_s, end_s)``) that was heard before: at ``first_start_s`` of
    ``first_recording_id`` (the first occurrence, which is kept). ``bit_error_rate``: of the aligned match."""

    recording_id: str
    start_s: float
    end_s: float
    duration_s: float
    first_recording_id: str
    first_start_s: float
    bit_error_rate: float


@dataclass(frozen=True)
class TagFrame:
    """One sound-event frame of a recording (``scores/tags/``): group scores in [0, 1] of a tagger window
    ``[start_s, end_s)`` (YAMNet: 0.96 s every 0.48 s), and its energy (dBFS)."""

    start_s: float
    end_s: float
    speech: float
    music: float
    vocal_music: float
    noise: float
    energy_db: float


@dataclass(frozen=True)
class SpeakerFrame:
    """One speaker-activity frame (``scores/speakers/``): ``speech`` (any speaker), ``overlap`` (second most
    active local speaker) and ``change`` (evidence of a speaker turn at this frame), all in [0, 1]."""

    start_s: float
    end_s: float
    speech: float
    overlap: float
    change: float


@dataclass(frozen=True)
class VoiceFrame:
    """One speaker-encoder frame (``scores/voices/``): ``distance``, the cosine distance in [0, 1] between the
    voice of the speech just before the frame's middle and just after it within one stretch of speech (0 in a
    pause), ``support_s``, the seconds of speech behind its weaker side (0: no distance), and ``across``, the same
    distance across pauses (the voices before and after one)."""

    start_s: float
    end_s: float
    distance: float
    across: float
    support_s: float


@dataclass(frozen=True)
class Frames:
    """A recording's frame scores of one kind, column-wise: frame ``i`` covers ``[start_s[i], end_s[i])`` and
    ``values[name][i]`` is its score. Written as ``tags`` / ``speakers`` rows (see :class:`TagFrame`)."""

    kind: str
    start_s: Any  # np.ndarray (n,) float64
    end_s: Any
    values: dict[str, Any]  # column → np.ndarray (n,)

    def __len__(self) -> int:
        return len(self.start_s)

    def to_arrow(self) -> pa.Table:
        cols = {"start_s": self.start_s, "end_s": self.end_s, **self.values}
        return pa.table({f.name: pa.array(cols[f.name], f.type) for f in SCHEMAS[self.kind]})

    @classmethod
    def from_arrow(cls, kind: str, table: pa.Table) -> Frames:
        import numpy as np

        arr = {
            c: np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=np.float64) for c in table.column_names
        }
        return cls(kind, arr.pop("start_s"), arr.pop("end_s"), arr)


#: old versions whose files are read with the columns they lack filled with nulls, per kind
UPGRADABLE: dict[str, frozenset[int]] = {
    "segments": frozenset({1, 2}),  # v1: no quality columns
    "rejected": frozenset({1, 2}),  # v1: no quality columns; v1/v2: no score/detail, reason free text
    **{k: frozenset({2}) for k in ("recordings", "decisions", "failures", "warnings", "materialized",
                                    "fingerprints", "repeats", "probes", "tags", "speakers")},  # unchanged in v3
}  # fmt: skip

# ---------------------------------------------------------------------------------------------------
# Arrow schemas, derived from the dataclasses above.

_WORD_TYPE = pa.struct(
    [("word", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64()), ("score", pa.float64())]
)
_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    float: pa.float64(),
    int: pa.int64(),
    bool: pa.bool_(),
    bytes: pa.binary(),
}


def _arrow_type(tp: Any) -> tuple[pa.DataType, bool]:
    """(arrow type, nullable) for a dataclass field annotation."""
    nullable = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(tp))
        (tp,) = args
        origin = typing.get_origin(tp)
    if origin is tuple and typing.get_args(tp)[0] is Word:
        return pa.list_(_WORD_TYPE), nullable
    return _SCALARS[tp], nullable


def arrow_schema(cls: type, extra: list[pa.Field] | None = None) -> pa.Schema:
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        tp, nullable = _arrow_type(hints[f.name])
        fields.append(pa.field(f.name, tp, nullable=nullable))
    return pa.schema(fields + (extra or []))


RECORDING_SCHEMA = arrow_schema(Recording)
DECISION_SCHEMA = arrow_schema(Decision)
FAILURE_SCHEMA = arrow_schema(Failure)
SEGMENT_SCHEMA = arrow_schema(Segment)
REJECTED_SCHEMA = arrow_schema(
    Segment,
    [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=True),
        pa.field("detail", pa.string(), nullable=True),
    ],
)

SCHEMAS: dict[str, pa.Schema] = {
    "recordings": RECORDING_SCHEMA,
    "decisions": DECISION_SCHEMA,
    "failures": FAILURE_SCHEMA,
    "warnings": FAILURE_SCHEMA,  # the same rows with severity "warning": notes on recordings that went on
    "segments": SEGMENT_SCHEMA,
    "rejected": REJECTED_SCHEMA,
    "materialized": arrow_schema(MaterializedSegment),
    "fingerprints": arrow_schema(Fingerprint),
    "repeats": arrow_schema(Repeat),
    "probes": arrow_schema(Probe),
    "tags": arrow_schema(TagFrame),
    "speakers": arrow_schema(SpeakerFrame),
    "voices": arrow_schema(VoiceFrame),
}
#: the quality columns, in schema order
QUALITY_COLUMNS = (
    "speech_ratio",
    "music_ratio",
    "vocal_music_ratio",
    "noise_ratio",
    "overlap_ratio",
    "speaker_change",
    "snr_db",
)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # a record class → its field names (to_row runs per row)


def to_row(record: Any) -> dict[str, Any]:
    """A record as a plain dict for Arrow (words become dicts, RejectedSegment is flattened)."""
    if isinstance(record, RejectedSegment):
        row = to_row(record.segment)
        row.update(stage=record.stage, reason=record.reason, score=record.score, detail=record.detail)
        return row
    names = _FIELD_NAMES.get(type(record))
    if names is None:
        names = _FIELD_NAMES[type(record)] = tuple(f.name for f in dataclasses.fields(record))
    row = {n: getattr(record, n) for n in names}
    if isinstance(record, Segment) and record.words is not None:
        row["words"] = [dataclasses.asdict(w) for w in record.words]
    return row


def segment_from_row(row: dict[str, Any]) -> Segment:
    names = {f.name for f in dataclasses.fields(Segment)}
    kw = {k: v for k, v in row.items() if k in names}
    if kw.get("words") is not None:
        kw["words"] = tuple(Word(**w) for w in kw["words"])
    return Segment(**kw)


def recording_from_row(row: dict[str, Any]) -> Recording:
    names = {f.name for f in dataclasses.fields(Recording)}
    return Recording(**{k: v for k, v in row.items() if k in names})


__all__ = [
    "SCHEMA_VERSION",
    "REJECT_REASONS",
    "QUALITY_COLUMNS",
    "UPGRADABLE",
    "Frames",
    "TagFrame",
    "SpeakerFrame",
    "VoiceFrame",
    "Word",
    "Recording",
    "Probe",
    "Decision",
    "Failure",
    "Segment",
    "RejectedSegment",
    "MaterializedSegment",
    "Fingerprint",
    "Repeat",
    "SCHEMAS",
    "RECORDING_SCHEMA",
    "DECISION_SCHEMA",
    "FAILURE_SCHEMA",
    "SEGMENT_SCHEMA",
    "REJECTED_SCHEMA",
    "to_row",
    "segment_from_row",
    "recording_from_row",
]
