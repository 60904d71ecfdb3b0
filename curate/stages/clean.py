"""Clean variants without running a model: trim music, singing, noise and overlapped speech out of segments,
split them at speaker turns, and give every segment its quality columns. Reads the frame scores the
``tag_events`` / ``tag_speakers`` passes saved (:mod:`curate.stages.tag`).

- ``clean_trim``: per segment, the frames whose group score passes a threshold become *bad* intervals
  (dilated by ``pad_s``); they are cut out — each cut is a rejected row with its reason and mean score —
  and what remains is split at speaker turns (the middle of a run of ``change`` frames). Words go to the
  piece holding their midpoint; a piece's text is rebuilt from its words (``None`` without words).
  Follow it with ``min_duration`` and ``split_long`` for the 1 s / 3 s minimum and the 30 s halving.
- ``clean_score``: fills ``speech_ratio`` … ``snr_db`` (schema v2) on every segment, changing nothing else.

Frame cells: a ``tags`` frame is a 0.96 s window every 0.48 s; its *cell* is the middle 0.48 s (cells tile the
recording, the first and last stretched to its edges). A ``speakers`` frame is its own cell.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from curate import timeline
from curate.errors import ConfigError, RecordingError
from curate.registry import register
from curate.schema import Frames, RejectedSegment, Segment
from curate.stages import clean_spans
from curate.stages.base import RecordingContext, StageResult, Transform
from curate.stages.clean_spans import ORDER, decide, median_smooth
from curate.stages.postprocess import join_words, merge_runs

REASONS = ORDER  # the order bad spans are attributed in; each is a rejection reason (schema.REJECT_REASONS)
TAG_HOP_S, SPEAKER_HOP_S = 0.48, 0.1  # frame hops of the two score kinds (for smoothing widths in seconds)
BRIDGED = ("music", "vocal_music", "noise")  # the beds a voice can be spoken over (``bed_bridge_s``)
FLOOR = "floor_db"  # a tags column made from the audio at derive time when a rule needs it (:func:`with_floor`)


@dataclass(frozen=True)
class Thresholds:
    """A frame is bad for a reason when its (smoothed) score exceeds the threshold (``None``: never).

    The defaults are what ``curate calibrate`` fitted on the dev half of the real-audio benchmark
    (docs/clean.md); ``hysteresis`` × a threshold is where a bad run, once started, ends."""

    music: float | None = 0.1
    vocal_music: float | None = 0.1
    noise: float | None = 0.1
    overlap: float | None = 0.5
    change: float | None = 0.3
    speech: float | None = None  # a run of at least ``min_nonspeech_s`` with a lower speech score is cut
    min_nonspeech_s: float = 1.0
    smooth_s: float = 0.0  # running-median width over the scores (0: the raw frames)
    hysteresis: float = 1.0  # a bad run lasts while the score stays above hysteresis × threshold
    min_bad_s: float = 0.0  # bad runs shorter than this are ignored
    pauses_from: str = "tags"  # the speech score that finds pauses: tags (0.48 s cells) or speakers (0.1 s)
    bed_margin_db: float | None = None  # noise spans grow over neighbours whose floor is within this (None: off)
    bed_window_s: float = 1.44  # the floor is the running minimum over this long (a voice's pauses pull it down)
    bed_min_db: float = 20.0  # a bed's floor lies this far above the recording's quietest (5th percentile)
    bed_bridge_s: float = 0.0  # a voice this short between two spans of one bed heard alone is over it (0: off)


def cells(frames: Frames) -> tuple[np.ndarray, np.ndarray]:
    """Cells that tile the frames exactly: boundaries halfway between frame middles, edges stretched."""
    start, end = np.asarray(frames.start_s, float), np.asarray(frames.end_s, float)
    if len(start) < 2:
        return start, end
    mid = (start + end) / 2
    edges = (mid[:-1] + mid[1:]) / 2
    return np.concatenate([[max(0.0, start[0])], edges]), np.concatenate([edges, [end[-1]]])


def score_of(frames: Frames, name: str) -> np.ndarray:
    """A column; ``music`` in ``tags`` means any music, so it is the max of music and vocal music."""
    v = np.asarray(frames.values[name], float)
    if frames.kind == "tags" and name == "music":
        v = np.maximum(v, np.asarray(frames.values["vocal_music"], float))
    return v


def _width(frames: Frames, smooth_s: float) -> int:
    hop = TAG_HOP_S if frames.kind == "tags" else SPEAKER_HOP_S
    return max(1, round(smooth_s / hop))


def bad_intervals(
    tags: Frames | None, speakers: Frames | None, th: Thresholds, pad_s: float = 0.0
) -> dict[str, list[timeline.Interval]]:
    """Reason → spans of the recording that are bad for it (smoothed, hysteresis, short runs dropped, padded)."""
    out: dict[str, list[timeline.Interval]] = {}
    src = speakers if th.pauses_from == "speakers" and speakers is not None and len(speakers) else tags
    if src is not None and len(src) and th.speech is not None:
        a, b = cells(src)
        low = median_smooth(np.asarray(src.values["speech"], float), _width(src, th.smooth_s)) < th.speech
        out["no_speech"] = timeline.drop_short(timeline.from_mask(a, b, low), th.min_nonspeech_s)  # not padded
    for reason in REASONS[:-1]:
        frames = speakers if reason == "overlap" else tags
        limit = getattr(th, reason)
        if frames is None or limit is None or not len(frames):
            continue
        a, b = cells(frames)
        runs = clean_spans.spans(
            a, b, np.asarray(frames.values[reason], float), limit, smooth_frames=_width(frames, th.smooth_s),
            hysteresis_ratio=th.hysteresis, min_s=th.min_bad_s,
        )  # fmt: skip
        if reason == "noise" and th.bed_margin_db is not None and FLOOR in frames.values:
            raw = frames.values[FLOOR]  # the noise's level: its own cells; the voice's floor: over its pauses
            floor = clean_spans.running_min(raw, _width(frames, th.bed_window_s))
            quiet = float(np.percentile(raw, 5)) + th.bed_min_db  # a bed is a steady noise above the room's
            alone = clean_spans.heard_alone(runs, a, b, frames.values["speech"])  # a bed is heard alone somewhere
            grown = clean_spans.extend_beds(alone, a, b, floor, th.bed_margin_db, level_db=raw, min_level_db=quiet)
            runs = timeline.merge([*runs, *grown])
        if reason in BRIDGED and th.bed_bridge_s > 0 and frames is tags:
            runs = clean_spans.bridge_beds(runs, a, b, frames.values["speech"], th.bed_bridge_s)
        out[reason] = timeline.dilate(runs, pad_s, lo=0.0)
    return out


def _needs_floor(tags: Frames | None, th: Thresholds) -> bool:
    """The bed rule is on, a noise span may start somewhere and the tags have no floor yet (else: no decoding)."""
    if th.bed_margin_db is None or th.noise is None or tags is None or not len(tags) or FLOOR in tags.values:
        return False
    return bool((np.asarray(tags.values["noise"], float) > th.noise).any())


def with_floor(tags: Frames, audio: np.ndarray) -> Frames:
    """``tags`` with the ``floor_db`` column (each window's quiet 10 ms moments, :func:`clean_spans.noise_floor_db`)
    computed from the recording's audio, when it lacks one."""
    if FLOOR in tags.values:
        return tags
    floor = clean_spans.noise_floor_db(audio, tags.start_s, tags.end_s)
    return dataclasses.replace(tags, values={**tags.values, FLOOR: floor})


def change_points(speakers: Frames | None, threshold: float | None) -> list[float]:
    """The middle of every run of frames whose turn evidence exceeds ``threshold``."""
    if speakers is None or threshold is None or not len(speakers):
        return []
    a, b = cells(speakers)
    runs = timeline.from_mask(a, b, np.asarray(speakers.values["change"], float) > threshold)
    return [(s + e) / 2 for s, e in runs]


def voice_turns(
    voices: Frames | None, speakers: Frames | None, threshold: float | None, min_support_s: float, snap_s: float
) -> list[float]:
    """Turns from the speaker encoder's track (``voices``): one per run of frames whose voice distance exceeds
    ``threshold`` with ``min_support_s`` of speech on each side, at its peak, moved into the deepest pause of the
    ``speakers`` frames within ``snap_s`` (speech score below 0.5) when there is one."""
    if voices is None or threshold is None or not len(voices):
        return []
    a, b = cells(voices)
    support = np.asarray(voices.values["support_s"], float) >= min_support_s
    points = clean_spans.peaks(a, b, np.asarray(voices.values["distance"], float), threshold, support)
    if speakers is None or not len(speakers) or snap_s <= 0:
        return points
    sa, sb = cells(speakers)
    return clean_spans.snap(points, sa, sb, np.asarray(speakers.values["speech"], float), snap_s, 0.5)


def cut_segment(
    span: timeline.Interval, bad: dict[str, list[timeline.Interval]], changes: list[float], edge_s: float = 0.3
) -> tuple[list[timeline.Interval], list[tuple[timeline.Interval, str]]]:
    """``span`` minus every bad part, split at the change points (ignoring those within ``edge_s`` of a
    piece's edge): :func:`curate.stages.clean_spans.decide` with every bad part cut."""
    return decide(span, bad, changes, touch_s=0.0, min_split_s=0.0, edge_s=edge_s)


def piece_segment(seg: Segment, start_s: float, end_s: float) -> Segment:
    """``seg`` narrowed to ``[start_s, end_s)``: words by midpoint, text rebuilt from them."""
    if (start_s, end_s) == (seg.start_s, seg.end_s):
        return seg
    if seg.words is None:
        return seg.with_times(start_s, end_s, text=None)
    words = []
    for w in seg.words:
        if w.start_s is None:
            continue
        mid = (w.start_s + (w.end_s if w.end_s is not None else w.start_s)) / 2
        if start_s <= mid < end_s:
            words.append(w)
    return seg.with_times(start_s, end_s, words=tuple(words), text=join_words(words) or None)


def _mean_in(frames: Frames, name: str, span: timeline.Interval) -> float:
    a, b = cells(frames)
    hit = (b > span[0]) & (a < span[1])
    return float(score_of(frames, name)[hit].mean()) if hit.any() else 0.0


def quality_columns(
    span: timeline.Interval, tags: Frames | None, speakers: Frames | None, th: Thresholds, snr_context_s: float = 5.0
) -> dict[str, float | bool | None]:
    """The schema-v2 quality columns of one segment (``None`` where its frames are missing)."""
    out: dict[str, float | bool | None] = {}
    if tags is not None and len(tags):
        a, b = cells(tags)
        for col, name, limit in (
            ("speech_ratio", "speech", 0.5),
            ("music_ratio", "music", th.music if th.music is not None else 0.5),
            ("vocal_music_ratio", "vocal_music", th.vocal_music if th.vocal_music is not None else 0.5),
            ("noise_ratio", "noise", th.noise if th.noise is not None else 0.5),
        ):
            out[col] = timeline.coverage(span, timeline.from_mask(a, b, score_of(tags, name) > limit))
        out["snr_db"] = snr_estimate(span, tags, snr_context_s)
    if speakers is not None and len(speakers):
        a, b = cells(speakers)
        v = np.asarray(speakers.values["overlap"], float) > (th.overlap if th.overlap is not None else 0.5)
        out["overlap_ratio"] = timeline.coverage(span, timeline.from_mask(a, b, v))
        out["speaker_change"] = any(
            span[0] + 0.3 < c < span[1] - 0.3 for c in change_points(speakers, th.change if th.change else 0.5)
        )
    return out


def snr_estimate(span: timeline.Interval, tags: Frames, context_s: float = 5.0) -> float | None:
    """Speech frames' mean power over the background's (the 10th percentile of frame power within
    ``context_s`` around the segment), in dB. ``None`` when the segment holds no speech frame."""
    s, e = span
    start = np.asarray(tags.start_s, float)
    end = np.asarray(tags.end_s, float)
    power = 10 ** (np.asarray(tags.values["energy_db"], float) / 10)
    inside = (end > s) & (start < e)
    speech = inside & (np.asarray(tags.values["speech"], float) > 0.5)
    near = (end > s - context_s) & (start < e + context_s)
    if not speech.any() or not near.any():
        return None
    floor = max(float(np.percentile(power[near], 10)), 1e-10)
    return float(10 * np.log10(max(float(power[speech].mean()), 1e-10) / floor))


def _frames(ctx: RecordingContext, stage: str) -> tuple[Frames | None, Frames | None]:
    tags, speakers = ctx.frame_scores("tags"), ctx.frame_scores("speakers")
    if tags is None and speakers is None:
        raise RecordingError(
            f"{stage}: no frame scores for '{ctx.recording.recording_id}'; run the tag_events / tag_speakers "
            "stages in a pass of this run (they save scores/tags and scores/speakers) before deriving from them"
        )
    return tags, speakers


@dataclass
class _Clean(Transform):
    music: float | None = 0.1  # score thresholds (None: never cut for it); tuned on the demo (docs/clean.md)
    vocal_music: float | None = 0.1
    noise: float | None = 0.1
    overlap: float | None = 0.5
    change: float | None = 0.3
    speech: float | None = None  # cut runs (>= min_nonspeech_s) whose speech score is below this; None: never
    min_nonspeech_s: float = 1.0

    def validate(self) -> None:
        for name in ("music", "vocal_music", "noise", "overlap", "change", "speech"):
            v = getattr(self, name)
            if v is not None and not 0 < v < 1:
                raise ConfigError(f"{self.stage_name}.{name} must be in (0, 1) or null, got {v}")

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            self.music, self.vocal_music, self.noise, self.overlap, self.change, self.speech, self.min_nonspeech_s
        )


@register("clean_trim")
@dataclass
class CleanTrim(_Clean):
    """Trim music, singing, noise and overlap off segments' edges, cut long bad spans out of their middle, split
    at speaker turns and re-join one speaker's pieces (:mod:`curate.stages.clean_spans`)."""

    # defaults: what `curate calibrate` fitted for wx-diar-3s-clean on the dev half of the real-audio benchmark
    # (benchmarks/bench_quality.py; docs/clean.md); other thresholds are _Clean's
    vocal_music: float | None = 0.05
    overlap: float | None = 0.3
    change: float | None = 0.1
    pad_s: float = 0.3  # bad spans grow by this much on each side
    edge_s: float = 0.3  # turns closer than this to a piece's edge are ignored
    smooth_s: float = 0.0  # running median over the frame scores, s (0: raw frames)
    hysteresis: float = 0.5  # a bad run lasts while its score stays above hysteresis × threshold
    min_bad_s: float = 0.0  # bad runs shorter than this are ignored
    touch_s: float = 0.0  # a bad span this close to a segment's edge trims the edge through it
    min_split_s: float = 2.0  # an interior bad span shorter than this stays; a longer one splits the segment
    join_gap_s: float = 0.0  # re-join one speaker's consecutive pieces across a clean gap this long (0: never)
    join_max_s: float = 30.0  # … while the joined segment is at most this long
    pauses_from: str = "tags"  # pauses (speech < speech threshold) from tags (0.48 s cells) or speakers (0.1 s)
    bed_margin_db: float | None = None  # a noise span grows under the speech next to it while the floor stays
    bed_window_s: float = 1.44  # within this many dB of its own (None: off); floor: running min over this window
    bed_min_db: float = 20.0  # only a steady noise grows: its floor this far above the recording's quietest
    bed_bridge_s: float = 0.0  # a voice at most this long between two spans of one bed heard alone is cut (0: off)
    voice: float | None = None  # a turn where the voice distance (scores/voices, tag_voices) peaks above this
    voice_support_s: float = 0.5  # … with at least this much speech on each side
    snap_s: float = 0.5  # … moved into the deepest pause within this distance
    join_voice: float | None = None  # re-join only across gaps whose voice distance stays at most this (None: any)
    turn_cut_s: float = 0.0  # speech within this of a turn is cut as overlap (the tails overlap frames miss; 0: off)
    turn_cut_pause_s: float | None = None  # … only at turns with no pause this long within edge_s (None: every turn)
    change_cut: float | None = None  # cut as overlap where the turn evidence (change) exceeds this (None: off)
    pause_s: float = 0.0  # split at every pause this long heard in the audio (clean_spans.energy_pauses; 0: off)
    pause_db: float = 30.0  # … a pause: 10 ms energies this far under the loudest within 1 s
    change_cut_pauses: bool = False  # change_cut spares the turns with a pause heard in them

    def validate(self) -> None:
        super().validate()
        if self.bed_margin_db is not None and not 0 < self.bed_margin_db <= 60:
            raise ConfigError(f"clean_trim.bed_margin_db must be in (0, 60] dB or null, got {self.bed_margin_db}")
        if self.bed_bridge_s < 0:
            raise ConfigError(f"clean_trim.bed_bridge_s must be >= 0, got {self.bed_bridge_s}")
        if self.bed_window_s <= 0 or self.bed_min_db < 0:
            raise ConfigError(
                f"clean_trim.bed_window_s must be > 0 and bed_min_db >= 0, got {self.bed_window_s}, {self.bed_min_db}"
            )
        for name in ("voice", "join_voice"):
            v = getattr(self, name)
            if v is not None and not 0 < v < 1:
                raise ConfigError(f"clean_trim.{name} must be in (0, 1) or null, got {v}")
        names = ("pad_s", "edge_s", "smooth_s", "min_bad_s", "touch_s", "min_split_s", "join_gap_s", "voice_support_s")
        for name in (*names, "snap_s", "turn_cut_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"clean_trim.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.hysteresis <= 1:
            raise ConfigError(f"clean_trim.hysteresis must be in (0, 1], got {self.hysteresis}")
        if self.pauses_from not in ("tags", "speakers"):
            raise ConfigError(f"clean_trim.pauses_from must be tags or speakers, got {self.pauses_from!r}")
        if self.turn_cut_pause_s is not None and self.turn_cut_pause_s < 0:
            raise ConfigError(f"clean_trim.turn_cut_pause_s must be >= 0 or null, got {self.turn_cut_pause_s}")
        if self.join_max_s <= 0:
            raise ConfigError(f"clean_trim.join_max_s must be > 0, got {self.join_max_s}")
        if self.change_cut is not None and not 0 < self.change_cut < 1:
            raise ConfigError(f"clean_trim.change_cut must be in (0, 1) or null, got {self.change_cut}")
        if self.pause_s < 0 or self.pause_db <= 0:
            raise ConfigError(f"clean_trim: need pause_s >= 0 and pause_db > 0, got {self.pause_s}, {self.pause_db}")

    @property
    def thresholds(self) -> Thresholds:
        return dataclasses.replace(
            super().thresholds,
            smooth_s=self.smooth_s,
            hysteresis=self.hysteresis,
            min_bad_s=self.min_bad_s,
            pauses_from=self.pauses_from,
            bed_margin_db=self.bed_margin_db,
            bed_window_s=self.bed_window_s,
            bed_min_db=self.bed_min_db,
            bed_bridge_s=self.bed_bridge_s,
        )

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        tags, speakers = _frames(ctx, self.stage_name)
        th = self.thresholds
        if _needs_floor(tags, th):
            tags = ctx.frames["tags"] = with_floor(tags, ctx.audio())  # model-free, from the decoded audio
        bad = bad_intervals(tags, speakers, th, self.pad_s)
        changes = change_points(speakers, th.change)
        wants_voices = self.voice is not None or self.join_voice is not None
        voices = ctx.frame_scores("voices") if wants_voices else None
        if wants_voices and voices is None:
            ctx.warnings.append(
                f"{self.stage_name}: no voice scores for '{ctx.recording.recording_id}' (add tag_voices after "
                "tag_speakers in the tags pass); turns come from the speaker activity alone"
            )
        changes = sorted({*changes, *voice_turns(voices, speakers, self.voice, self.voice_support_s, self.snap_s)})
        if self.turn_cut_s > 0:
            found = bad.get("overlap", [])
            bad["overlap"] = timeline.merge([*found, *self._around_turns(changes, speakers, found)])
        pauses = (
            clean_spans.energy_pauses(ctx.audio(), self.pause_s, self.pause_db) if self.pause_s and segments else []
        )
        if self.change_cut is not None and speakers is not None and len(speakers):
            a, b = cells(speakers)  # where two voices meet with no pause, the tail of one under the other: both cut
            turns = timeline.from_mask(a, b, np.asarray(speakers.values["change"], float) > self.change_cut)
            if self.change_cut_pauses:  # a turn with a pause heard in it is clean: split at the pause, cut nothing
                turns = [t for t in turns if not timeline.intersect([t], pauses)]
            bad["overlap"] = timeline.merge([*bad.get("overlap", []), *turns])
        changes = sorted({*changes, *((s + e) / 2 for s, e in pauses)})
        kept: list[Segment] = []
        rejected: list[RejectedSegment] = []
        for seg in segments:
            pieces, removed = decide(
                (seg.start_s, seg.end_s), bad, changes, touch_s=self.touch_s, min_split_s=self.min_split_s,
                edge_s=self.edge_s,
            )  # fmt: skip
            kept += [piece_segment(seg, s, e) for s, e in pieces]
            for (s, e), reason in removed:
                frames = speakers if reason == "overlap" else tags
                col = "speech" if reason == "no_speech" else reason
                score = _mean_in(frames, col, (s, e)) if frames is not None else None
                rejected.append(RejectedSegment(piece_segment(seg, s, e), self.stage_name, reason, score=score))
        if self.join_gap_s > 0:
            apart = []  # where the voices on either side differ: no join across it
            if voices is not None and len(voices) and self.join_voice is not None:
                va, vb = cells(voices)
                far = np.asarray(voices.values["across"], float) > self.join_voice
                apart = timeline.from_mask(va, vb, far & (np.asarray(voices.values["support_s"]) > 0))
            ok = clean_spans.rejoin_allowed(
                [iv for ivs in bad.values() for iv in ivs], changes, self.join_gap_s, self.join_max_s, apart
            )
            kept = merge_runs(
                kept,
                lambda group, nxt: ok((group[0].start_s, group[-1].end_s), (nxt.start_s, nxt.end_s),
                                      group[-1].speaker == nxt.speaker),
                self.join_gap_s,
            )  # fmt: skip
        return StageResult(kept, rejected)

    def _around_turns(
        self, changes: list[float], speakers: Frames | None, found: list[timeline.Interval]
    ) -> list[timeline.Interval]:
        """The spans cut around turns (``turn_cut_s``), skipping turns that sit in a pause of at least
        ``turn_cut_pause_s`` (two voices apart: nothing overlapped to cut) and turns in an overlap span the
        frames found (``found``: cut already, with ``pad_s``)."""
        if self.turn_cut_pause_s is not None and speakers is not None and len(speakers):
            a, b = cells(speakers)
            pauses = clean_spans.pause_at(changes, a, b, speakers.values["speech"], self.edge_s)
            changes = [c for c, p in zip(changes, pauses, strict=True) if p < self.turn_cut_pause_s]
        return clean_spans.around_turns(changes, self.turn_cut_s, found=found)


@register("clean_score")
@dataclass
class CleanScore(_Clean):
    """Fill the quality columns of every segment from the saved frame scores."""

    snr_context_s: float = 5.0

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        tags, speakers = _frames(ctx, self.stage_name)
        th = self.thresholds
        return StageResult(
            [
                dataclasses.replace(s, **quality_columns((s.start_s, s.end_s), tags, speakers, th, self.snr_context_s))
                for s in segments
            ]
        )


__all__ = [
    "CleanScore",
    "CleanTrim",
    "Thresholds",
    "bad_intervals",
    "cells",
    "change_points",
    "cut_segment",
    "piece_segment",
    "quality_columns",
    "snr_estimate",
    "voice_turns",
    "with_floor",
]
