"""What happens to one shard of recordings, whatever runs it: the reference semantics both runners share.

A shard is a fixed, deterministic list of recordings. Processing it runs every pass on every recording
(one recording's audio in memory at a time), derives the model-free variants, and writes one part file per
variant and per rejecting stage, then a completion marker. A rerun skips shards that have a marker, so a
killed run resumes and ends with exactly the files of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate import audio, manifest
from curate.catalog.content import check_content
from curate.config import Derivation, Pipeline, Settings
from curate.errors import RecordingError, one_line
from curate.rundir import RunDir
from curate.runners.guard import RecordingGuard
from curate.runners.resume import transient_ids
from curate.schema import Failure, Frames, Recording, RejectedSegment, Segment
from curate.stages.base import RecordingContext, Transform

log = logging.getLogger(__name__)


@dataclass
class RecordingOutput:
    variants: dict[str, list[Segment]] = field(default_factory=lambda: defaultdict(list))
    rejected: dict[str, list[RejectedSegment]] = field(default_factory=lambda: defaultdict(list))
    info: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, Frames] = field(default_factory=dict)  # frame scores by kind, saved under scores/
    decoded_s: float | None = None  # the decoded duration, when it disagrees with the header's (it wins)


def _label(segments: list[Segment], variant: str) -> list[Segment]:
    return [s if s.variant == variant else dataclasses.replace(s, variant=variant) for s in segments]


def run_stages(
    stages: list[Transform],
    ctx: RecordingContext,
    segments: list[Segment],
    out: RecordingOutput,
    variant: str | None = None,
    guard: RecordingGuard | None = None,
) -> list[Segment]:
    """Apply transforms in order, collecting rejected segments and emitted variants. ``variant`` labels the
    rejected segments (a derivation's name), so ``rejected/<stage>/`` says which variant dropped them.
    ``guard``: each stage call runs under it (a :class:`~curate.errors.StageTimeout` past its watchdog limit)."""
    for stage in stages:
        result = guard.call(stage, ctx, segments) if guard is not None else stage.process(ctx, segments)
        segments = result.segments
        rejected = result.rejected
        if variant:
            rejected = [
                dataclasses.replace(r, segment=dataclasses.replace(r.segment, variant=variant)) for r in rejected
            ]
        if rejected:
            out.rejected[stage.stage_name].extend(rejected)
        if stage.emit:
            segments = _label(segments, stage.emit)
            out.variants[stage.emit].extend(segments)
    return segments


def derive_recording(
    derivations: list[Derivation], ctx: RecordingContext, out: RecordingOutput, guard: RecordingGuard | None = None
) -> None:
    """Model-free variants from variants already in ``out`` (in pipeline order, so chains work)."""
    for d in derivations:
        segments = run_stages(d.stages, ctx, list(out.variants.get(d.source, [])), out, d.variant, guard)
        out.variants[d.variant].extend(_label(segments, d.variant))


def verify_audio(rec: Recording, timeout_s: float | None = None) -> tuple[list[str], Recording]:
    """Decode the whole file once, streaming, and check it against its header. Returns warnings and the
    recording as decoded: when the header's duration disagrees with the audio, the decoded duration wins (a
    warning says so). Raises :class:`~curate.audio.AudioDecodeError` for audio that is damaged beyond use
    (it decodes short, with decoder errors), or that takes longer than ``timeout_s`` to decode (the watchdog)."""
    result = audio.scan(rec.audio_path, timeout_s=timeout_s)
    warnings = []
    header_s, decoded_s = rec.duration_s, result.decoded_duration_s
    if abs(decoded_s - header_s) > max(0.5, 0.01 * header_s):
        if decoded_s < header_s and result.decoder_error:
            raise audio.AudioDecodeError(
                rec.audio_path,
                f"truncated: header says {header_s:.2f} s but only {decoded_s:.2f} s decode ({result.decoder_error})",
            )
        warnings.append(f"header says {header_s:.2f} s but {decoded_s:.2f} s decode; the decoded duration is used")
        rec = dataclasses.replace(rec, duration_s=decoded_s)
    if result.nonfinite_samples:
        warnings.append(f"{result.nonfinite_samples} NaN/inf samples replaced by 0")
    if result.peak < 1e-4:
        warnings.append("audio is silent (peak < -80 dBFS)")
    return warnings, rec


def recording_context(settings: Settings, rec: Recording) -> RecordingContext:
    """The context every runner gives a recording's stages: the language rule and the decoding watchdog are
    the settings' (one place for both)."""
    ctx = RecordingContext(rec, decode_timeout_s=settings.decode_timeout_s(rec.duration_s))
    ctx.language = settings.language_for(rec)
    return ctx


def checked_recording(settings: Settings, rec: Recording, verify: bool) -> tuple[list[str], Recording]:
    """A recording before its first stage: the file ingest probed, not one put in its place since; with
    ``verify``, decoded whole and checked against its header (:func:`verify_audio`)."""
    check_content(rec.audio_path, rec.content)
    if not verify:
        return [], rec
    return verify_audio(rec, settings.decode_timeout_s(rec.duration_s))


def failure_row(rec: Recording, error: Exception) -> Failure:
    """A per-recording error (:class:`~curate.audio.AudioDecodeError`, :class:`RecordingError`) as a failure row;
    a :class:`~curate.errors.StageTimeout` names its stage."""
    stage = getattr(error, "stage", None) or "segment"
    return Failure(rec.recording_id, stage, type(error).__name__, one_line(error, 4000), rec.audio_path)


def process_recording(
    pipeline: Pipeline,
    rec: Recording,
    verify: bool = True,
    guard: RecordingGuard | None = None,
) -> tuple[RecordingOutput, list[str]]:
    """Every pass and derivation on one recording, its audio decoded once for all of them, every stage call
    under the recording's ``guard``."""
    warnings, checked = checked_recording(pipeline.settings, rec, verify)
    ctx = recording_context(pipeline.settings, checked)
    out = RecordingOutput(decoded_s=checked.duration_s if checked is not rec else None)
    try:
        for p in pipeline.passes:
            run_stages(p.stages, ctx, [], out, guard=guard)
        derive_recording(pipeline.derive, ctx, out, guard)
    finally:
        ctx.release()
    out.info = ctx.info
    out.frames = ctx.frames
    return out, warnings + ctx.warnings


def write_shard(
    pipeline: Pipeline,
    shard_id: int,
    recordings: list[Recording],
    outputs: dict[str, tuple[RecordingOutput, list[str]]],
    failures: list[Failure],
    out_dir: RunDir | str | Path,
    seconds: float,
) -> dict[str, Any]:
    """Write a shard's variant and rejected parts, its failure rows and, last, its completion marker.

    ``outputs``: recording_id → (what its stages produced, its warnings) for the recordings that succeeded.
    Returns the marker's summary. Shared by both runners, so their files are identical."""
    run = RunDir.of(out_dir)
    variants: dict[str, list[Segment]] = {v: [] for v in pipeline.variants()}
    rejected: dict[str, list[RejectedSegment]] = defaultdict(list)
    failures = list(failures)
    done_ids: list[str] = []
    info: dict[str, Any] = {}
    written: list[Path] = []  # what this shard wrote, so a remote run directory gets exactly these files
    for rec in recordings:
        if rec.recording_id not in outputs:
            continue
        out, warnings = outputs[rec.recording_id]
        done_ids.append(rec.recording_id)
        failures += [
            Failure(rec.recording_id, "segment", "Warning", f"{rec.audio_path}: {w}", rec.audio_path, "warning")
            for w in warnings
        ]
        for v, segs in out.variants.items():
            variants[v].extend(segs)
        for st, rej in out.rejected.items():
            rejected[st].extend(rej)
        for k, v in out.info.items():
            info.setdefault(k, v)
        for kind, frames in out.frames.items():
            written.append(manifest.write_table(run.scores_path(kind, rec.recording_id), frames.to_arrow(), kind))
    decoded = {rid: out.decoded_s for rid, (out, _) in outputs.items() if out.decoded_s is not None}
    for v, segs in variants.items():
        if segs:
            written.append(manifest.write_records(run.variant_part(v, shard_id), segs, "segments"))
    for st, rej in rejected.items():
        written.append(manifest.write_records(run.rejected_part(st, shard_id), rej, "rejected"))
    if failures:
        written.append(manifest.write_records(run.unit_failures(shard_id), failures, "failures"))
    summary = {
        "shard_id": shard_id,
        "recordings": [r.recording_id for r in recordings],
        "processed": done_ids,
        "failed": sorted({f.recording_id for f in failures if f.severity == "error"}),
        "retry": transient_ids(failures),  # failed with an error that may pass: a rerun tries them again
        "audio_s": sum(decoded.get(r.recording_id, r.duration_s) for r in recordings),
        # recordings whose audio decoded to another length than the header said: finalize corrects
        # recordings.parquet with these, so hours in the stats are the audio's
        "decoded_s": decoded,
        "segments": {v: len(s) for v, s in variants.items()},
        "seconds": seconds,
        "info": info,
        "files": [run.relative(p) for p in written],  # the marker lists its parts
    }
    manifest.write_json(run.marker(shard_id), summary)
    return summary


def process_shard(
    pipeline: Pipeline,
    shard_id: int,
    recordings: list[Recording],
    out_dir: RunDir | str | Path,
    verify: bool = True,
) -> dict[str, Any]:
    """Process one shard and write its parts and marker. Returns the marker's summary. Stages must be set up."""
    run = RunDir.of(out_dir)
    guard = RecordingGuard(pipeline.settings, run)
    t0 = time.perf_counter()
    outputs: dict[str, tuple[RecordingOutput, list[str]]] = {}
    failures: list[Failure] = []
    for done, rec in enumerate(recordings):
        poisoned = guard.poisoned(rec)  # an earlier try was killed or crashed on it: not again
        if poisoned is not None:
            failures.append(poisoned)
            continue
        guard.running(shard_id, rec, done)
        try:
            outputs[rec.recording_id] = process_recording(pipeline, rec, verify, guard)
        except (audio.AudioDecodeError, RecordingError) as e:
            failures.append(failure_row(rec, e))
    summary = write_shard(pipeline, shard_id, recordings, outputs, failures, run, time.perf_counter() - t0)
    guard.finished(shard_id)
    return summary


@dataclass
class ShardState:
    """A shard part-way through its stages: what each recording has produced so far.

    The Ray stage-pools mode passes one of these from stage pool to stage pool (one stage at a time, so each
    model loads once per worker); :meth:`finish` then writes exactly what :func:`process_shard` writes."""

    shard_id: int
    recordings: list[Recording]
    outputs: dict[str, RecordingOutput] = field(default_factory=dict)
    segments: dict[str, list[Segment]] = field(default_factory=dict)  # current segments of the running pass
    warnings: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, Failure] = field(default_factory=dict)  # recording_id → its failure (skipped after)
    decoded: dict[str, Recording] = field(default_factory=dict)  # recordings whose decoded duration won
    run: RunDir | None = None  # the run directory: its guard's notes (None: none written or read)

    def apply(self, pipeline: Pipeline, stage: Transform, first_of_pass: bool, verify: bool) -> None:
        """Run one stage on every recording that has not failed. ``first_of_pass``: start from no segments;
        ``verify``: decode and check each recording against its header first (the pipeline's first stage)."""
        guard = RecordingGuard(pipeline.settings, self.run)
        for rec in self.recordings:
            rid = rec.recording_id
            if rid in self.failures:
                continue
            poisoned = guard.poisoned(rec)  # a try of this stage was killed on it by the watchdog
            if poisoned is not None:
                self.failures[rid] = poisoned
                continue
            rec = self.decoded.get(rid, rec)
            out = self.outputs.setdefault(rid, RecordingOutput())
            ctx = None
            try:
                if verify:
                    warnings, checked = checked_recording(pipeline.settings, rec, True)
                    self.warnings[rid].extend(warnings)
                    if checked is not rec:
                        rec = self.decoded[rid] = checked
                ctx = recording_context(pipeline.settings, rec)
                ctx.frames = dict(out.frames)  # frame scores of earlier passes (tags, speakers)
                segments = [] if first_of_pass else self.segments.get(rid, [])
                self.segments[rid] = run_stages([stage], ctx, segments, out, guard=guard)
                for k, v in ctx.info.items():
                    out.info.setdefault(k, v)
                out.frames.update(ctx.frames)
                self.warnings[rid].extend(ctx.warnings)
            except (audio.AudioDecodeError, RecordingError) as e:
                self.failures[rid] = failure_row(rec, e)
            finally:
                if ctx is not None:
                    ctx.release()

    def finish(self, pipeline: Pipeline, out_dir: str | Path, seconds: float) -> dict[str, Any]:
        """Derive the model-free variants, then write the shard's parts and marker."""
        outputs = {}
        guard = RecordingGuard(pipeline.settings, self.run)
        for rec in self.recordings:
            rid = rec.recording_id
            if rid in self.failures:
                continue
            out = self.outputs.setdefault(rid, RecordingOutput())
            if rid in self.decoded:
                out.decoded_s = self.decoded[rid].duration_s
            rec = self.decoded.get(rid, rec)
            ctx = recording_context(pipeline.settings, rec)
            ctx.frames = dict(out.frames)
            try:
                derive_recording(pipeline.derive, ctx, out, guard)
            except RecordingError as e:  # as process_shard: the recording is a failure row, its output dropped
                self.failures[rid] = failure_row(rec, e)
                continue
            outputs[rid] = (out, self.warnings.get(rid, []))
        return write_shard(
            pipeline, self.shard_id, self.recordings, outputs, list(self.failures.values()), out_dir, seconds
        )


def publish(summary: dict[str, Any], run: RunDir) -> dict[str, Any]:
    """Publish a shard's files where the run lives, its completion marker last (no-op for a local run)."""
    run.publish(summary["files"], then=[run.marker(summary["shard_id"])])
    return summary


class PipelineWorker:
    """One worker's pipeline: stages set up once (models loaded once per worker), then shard after shard.
    ``run``: the run directory (a staged one is replaced by this node's copy at set-up)."""

    def __init__(self, pipeline: Pipeline, run: RunDir | str | Path, verify: bool = True):
        self.pipeline = pipeline
        self.run = RunDir.of(run)
        self.verify = verify
        self._ready = False

    @property
    def out_dir(self) -> Path:
        return self.run.path

    def setup(self) -> None:
        if not self._ready:
            self.run = self.run.on_node(self.pipeline.transforms())
            for stage in self.pipeline.transforms():
                stage.bind(self.pipeline.settings)
                stage.setup()
            self._ready = True

    def teardown(self) -> None:
        for stage in self.pipeline.transforms():
            stage.teardown()
        self._ready = False

    def __call__(self, shard_id: int, recordings: list[Recording]) -> dict[str, Any]:
        self.setup()
        return publish(process_shard(self.pipeline, shard_id, recordings, self.run, self.verify), self.run)


def load_marker(run: RunDir | Path, shard_id: int) -> dict[str, Any] | None:
    """A shard's completion marker, or ``None`` (none yet, or a damaged one, which is set aside)."""
    run = RunDir.of(run)
    return run.read_state(run.marker(shard_id))
