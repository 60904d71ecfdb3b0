"""Listening previews and materialized corrupted datasets (for trainers other than curate's pre-trainer).

- :func:`preview`: a handful of corrupted examples as WAV (plus the clean input), each with a sidecar JSON
  (condition, SNR, sources, offsets). Every written example is corrupted (the fraction is set to 100 %).
- :func:`render`: a corrupted copy of a run-dir variant as FLAC files and a new run directory whose variant
  ``<variant>-<condition>`` points at them; the segments are shuffled with the seed and cut into batches of
  ``batch_size`` (batch indices 0, 1, … at epoch 0), so the same seed gives the same files. Resumable per
  chunk of batches.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curate import audio, manifest
from curate.corrupt.conditions import Condition, batch_rng
from curate.corrupt.readers import run_utterances, scan_librispeech
from curate.corrupt.sources import Sources, Utterance
from curate.corrupt.transform import ConcatTransform, CorruptionTransform
from curate.errors import RunDirError
from curate.rundir import RunDir, safe_name
from curate.schema import Decision, Failure, Recording, Segment

log = logging.getLogger(__name__)


def speech_segments(
    speech: str | Path, variant: str | None = None, limit: int | None = None, seed: int = 0
) -> tuple[list[Segment], list[Utterance]]:
    """Segments + pairing keys from a run directory (``variant``: default its only variant) or a LibriSpeech
    root (``limit`` utterances drawn with ``seed``, probed on the fly: enough for a preview)."""
    speech = Path(speech)
    if RunDir(speech).recordings.is_file():
        if variant is None:
            variant = RunDir(speech).only_variant()  # a RunDirError names the variants to choose from
        return run_utterances(speech, variant)
    utts, _ = scan_librispeech(speech)
    if limit is not None and len(utts) > limit:
        keep = np.sort(batch_rng(seed, 0, 0, stream=2).choice(len(utts), size=limit, replace=False))
        utts = [utts[k] for k in keep]
    segs, keys = [], []
    for u in utts:
        info = audio.probe(u.path)
        segs.append(
            Segment.new(
                u.utterance_id,
                u.path,
                0.0,
                info.duration_s,
                "librispeech",
                text=u.text,
                language="en",
                speaker=u.speaker,
            )
        )
        keys.append(Utterance(segs[-1].segment_id, u.speaker, f"{u.speaker}-{u.chapter}"))
    return segs, keys


def _load(seg: Segment) -> np.ndarray:
    return audio.load(seg.audio_path, seg.start_s, seg.end_s)


def _write_wav(path: Path, x: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 1.0), audio.SAMPLE_RATE, subtype="PCM_16")


def preview(
    condition: Condition,
    segments: Sequence[Segment],
    utterances: Sequence[Utterance],
    sources: Sources,
    out_dir: str | Path,
    n: int = 8,
    seed: int = 0,
) -> list[Path]:
    """Write ``n`` corrupted examples (``NN.wav``, ``NN.clean.wav``, ``NN.json``); returns the WAV paths."""
    out_dir = Path(out_dir)
    rng = batch_rng(seed, 0, 0)
    written = []
    if condition.kind == "concat":
        pairs = [p for p in ConcatTransform(condition, seed).pairs(utterances) if p[1] is not None]
        pairs = [pairs[k] for k in np.sort(rng.permutation(len(pairs))[:n])]
        for k, (i, j) in enumerate(pairs):
            a, b = _load(segments[i]), _load(segments[j])
            _write_wav(out_dir / f"{k:02d}.wav", ConcatTransform.apply(a, b))
            _write_wav(out_dir / f"{k:02d}.clean.wav", a)
            side = {
                "condition": condition.name,
                "kind": "concat",
                "pairing": condition.pairing,
                "seed": seed,
                "first": _describe(segments[i], utterances[i]),
                "second": _describe(segments[j], utterances[j]),
                "boundary_s": a.size / audio.SAMPLE_RATE,
            }
            manifest.write_json(out_dir / f"{k:02d}.json", side)
            written.append(out_dir / f"{k:02d}.wav")
        return written
    idx = np.sort(rng.permutation(len(segments))[:n])
    clean = [_load(segments[i]) for i in idx]
    forced = dataclasses.replace(condition, fraction=1.0)
    waves, events = CorruptionTransform(forced, sources, seed)(
        clean, 0, 0, speakers=[utterances[i].speaker for i in idx]
    )
    for ev in events:
        k, i = ev.index, int(idx[ev.index])
        _write_wav(out_dir / f"{k:02d}.wav", waves[k])
        _write_wav(out_dir / f"{k:02d}.clean.wav", clean[k])
        side = {
            "condition": condition.name,
            "fraction_in_training": condition.fraction,
            "seed": seed,
            "speech": _describe(segments[i], utterances[i]),
            **ev.to_dict(),
            "source_offset_s": ev.source_offset / audio.SAMPLE_RATE,
        }
        if ev.source_id.startswith("batch:"):
            side["source_id"] = segments[int(idx[int(ev.source_id[6:])])].segment_id
        manifest.write_json(out_dir / f"{k:02d}.json", side)
        written.append(out_dir / f"{k:02d}.wav")
    return written


def _describe(seg: Segment, utt: Utterance) -> dict[str, Any]:
    return {
        "segment_id": seg.segment_id,
        "audio_path": seg.audio_path,
        "start_s": seg.start_s,
        "end_s": seg.end_s,
        "speaker": utt.speaker,
        "session": utt.session,
        "text": seg.text,
    }


def render(
    condition: Condition,
    run_dir: str | Path,
    variant: str,
    sources: Sources,
    out_dir: str | Path,
    seed: int = 0,
    batch_size: int = 16,
    chunk_batches: int = 64,
    on_progress: Callable[[int, float], None] | None = None,
) -> Path:
    """Materialize ``variant`` of ``run_dir`` corrupted by ``condition`` into a new run dir at ``out_dir``.
    ``on_progress(items, audio_s)`` is called per batch. Returns ``out_dir``."""
    from curate.stats import compute_stats, write_stats

    t0 = time.time()
    out_dir = Path(out_dir)
    segs, utts = run_utterances(run_dir, variant)
    new_variant = f"{variant}-{condition.name}"
    concat = condition.kind == "concat"
    if concat:
        groups = [[i] if j is None else [i, j] for i, j in ConcatTransform(condition, seed).pairs(utts)]
        transform = None
    else:
        groups = [[i] for i in range(len(segs))]
        transform = CorruptionTransform(condition, sources, seed)
    order = batch_rng(seed, 0, 0, stream=3).permutation(len(groups))  # batches mix speakers, as in training
    groups = [groups[k] for k in order]
    batches = [groups[k : k + batch_size] for k in range(0, len(groups), batch_size)]
    run = RunDir(out_dir)
    fingerprint = {
        "condition": dataclasses.asdict(condition),
        "seed": seed,
        "batch_size": batch_size,
        "run_dir": str(Path(run_dir).resolve()),
        "variant": variant,
        "segments": len(segs),
    }
    fp_file = run.progress_file("render.json")
    if fp_file.exists():
        saved = json.loads(fp_file.read_text())
        if saved != json.loads(json.dumps(fingerprint)):
            raise RunDirError(
                f"{out_dir} holds a render of another condition, seed or input ({saved}); "
                "choose a new --out, or delete it to start over"
            )
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise RunDirError(f"{out_dir} is not empty and holds no render in progress; choose a new --out")
    else:
        manifest.write_json(fp_file, fingerprint)
    for c in range(0, len(batches), chunk_batches):
        n = c // chunk_batches
        if run.variant_part(new_variant, n).exists():
            if on_progress:
                for b in batches[c : c + chunk_batches]:
                    on_progress(len(b), 0.0)
            continue
        recs: list[Recording] = []
        out_segs: list[Segment] = []
        fails: list[Failure] = []
        for bi in range(c, min(c + chunk_batches, len(batches))):
            audio_s = _render_batch(
                condition, transform, segs, utts, batches[bi], bi, out_dir, new_variant, recs, out_segs, fails
            )
            if on_progress:
                on_progress(len(batches[bi]), audio_s)
        manifest.write_records(run.progress_part("recordings", n), recs, "recordings")
        manifest.write_records(run.unit_failures(n), fails, "failures")
        manifest.write_records(run.variant_part(new_variant, n), out_segs, "segments")  # last: the chunk's marker
    recs_t = manifest.read_table(run.progress_parts("recordings"), "recordings")
    manifest.write_table(run.recordings, recs_t, "recordings")
    manifest.write_table(run.failures, manifest.read_table(run.unit_failures_dir, "failures"), "failures")
    manifest.write_records(
        run.decisions,
        [Decision(r, True, "kept") for r in recs_t.column("recording_id").to_pylist()],
        "decisions",
    )
    input_s = float(sum(recs_t.column("duration_s").to_pylist()))
    write_stats(out_dir, compute_stats(out_dir, [new_variant], input_s))
    RunDir(out_dir).write_run(
        "corrupt-render",
        [new_variant],
        source={"run_dir": str(Path(run_dir).resolve()), "variant": variant},
        condition=dataclasses.asdict(condition),
        seed=seed,
        batch_size=batch_size,
        counts={"segments_in": len(segs), "examples_out": recs_t.num_rows},
        timings_s={"total": round(time.time() - t0, 3)},
    )
    return out_dir


def _render_batch(
    condition: Condition,
    transform: CorruptionTransform | None,
    segs: Sequence[Segment],
    utts: Sequence[Utterance],
    batch: list[list[int]],
    bi: int,
    out_dir: Path,
    new_variant: str,
    recs: list[Recording],
    out_segs: list[Segment],
    fails: list[Failure],
) -> float:
    waves, items = [], []
    for group in batch:
        try:
            waves.append([_load(segs[i]) for i in group])
            items.append(group)
        except audio.AudioDecodeError as e:
            fails.append(
                Failure(segs[group[0]].segment_id, f"corrupt:{condition.name}", "AudioDecodeError", str(e), e.path)
            )
    events: dict[int, dict[str, Any]] = {}
    if transform is not None:
        outs, evs = transform([w[0] for w in waves], 0, bi, speakers=[utts[g[0]].speaker for g in items])
        for ev in evs:
            d = ev.to_dict()
            if ev.source_id.startswith("batch:"):
                d["source_id"] = segs[items[int(ev.source_id[6:])][0]].segment_id
            events[ev.index] = d
    else:
        outs = [ConcatTransform.apply(w[0], w[1] if len(w) > 1 else None) for w in waves]
    total = 0.0
    for k, (group, y) in enumerate(zip(items, outs, strict=True)):
        first = segs[group[0]]
        rid = first.segment_id if len(group) == 1 else f"{first.segment_id}+{segs[group[1]].segment_id}"
        path = (out_dir / "audio" / f"{bi:06d}" / safe_name(rid, ".flac")).resolve()
        _write_wav(path, y)
        dur = y.size / audio.SAMPLE_RATE
        total += dur
        meta: dict[str, Any] = {
            "condition": condition.name,
            "sources": [segs[i].segment_id for i in group],
            "corrupted": len(group) > 1 or k in events,
        }
        if k in events:
            meta.update(events[k])
        if len(group) > 1:
            meta["boundary_s"] = waves[k][0].size / audio.SAMPLE_RATE
        recs.append(
            Recording(
                rid,
                str(path),
                dur,
                audio.SAMPLE_RATE,
                1,
                "pcm_16",
                language=first.language,
                metadata=json.dumps(meta, sort_keys=True),
            )
        )
        replaced = k in events and condition.kind == "sub"
        two = condition.pairing == "different-speaker" or (k in events and condition.source == "speech")
        text = " ".join(segs[i].text or "" for i in group).strip() or None
        out_segs.append(
            Segment.new(
                rid,
                str(path),
                0.0,
                dur,
                new_variant,
                text=None if replaced else text,
                language=first.language,
                speaker=None if (two or replaced) else first.speaker,
            )
        )
    return total


__all__ = ["preview", "render", "speech_segments"]
