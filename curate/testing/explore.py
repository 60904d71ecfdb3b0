"""A small run directory with everything ``curate explore`` shows, for its tests and its benchmark.

``make_explore_run`` writes real audio (tones, so a clip's length can be checked), ``recordings.parquet``,
``decisions.parquet``, two variants whose segments carry text, speakers and the quality columns, rejected cuts
with reasons, saved frame scores (``tags``, ``speakers``), ``stats.json`` and ``run.json``, all through
:mod:`curate.manifest` and :class:`~curate.rundir.RunDir` like a real run. ``segments_per_recording`` scales
one variant (``big``) for the benchmark; the audio files stay short and are shared between recordings then.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from curate import manifest
from curate.rundir import RunDir
from curate.schema import SCHEMAS, Decision, Frames, Recording, RejectedSegment, Segment

WORDS = ("goedenavond", "dames", "en", "heren", "het", "nieuws", "van", "vandaag", "weer", "sport", "muziek")
REASONS = ("music", "noise", "too_short")  # the closed set of curate.schema.REJECT_REASONS; scores in `score`


def _segments(rec: Recording, variant: str, rng: np.random.Generator, span_s: float) -> list[Segment]:
    """Consecutive 1–``span_s`` s segments over the recording, as many as fit."""
    out, t, k = [], 0.3, 0
    while t + 1.0 < rec.duration_s:
        d = min(float(rng.uniform(1.0, span_s)), rec.duration_s - t)
        music = float(rng.uniform(0, 0.4)) if rng.uniform() < 0.3 else 0.0
        out.append(
            Segment.new(
                rec.recording_id,
                rec.audio_path,
                t,
                t + d,
                variant,
                text=" ".join(WORDS[(k + j) % len(WORDS)] for j in range(2 + k % 4)),
                language="nl" if k % 5 else None,  # unlabelled rows take the recording's language (like select)
                speaker=f"SPEAKER_{k % 3:02d}",
                avg_logprob=float(rng.uniform(-1.2, -0.1)),
                no_speech_prob=float(rng.uniform(0, 0.5)),
                speech_ratio=1.0 - music,
                music_ratio=music,
                vocal_music_ratio=music / 2,
                noise_ratio=float(rng.uniform(0, 0.05)),
                overlap_ratio=float(rng.uniform(0, 0.1)) if k % 4 == 0 else 0.0,
                speaker_change=bool(k % 6 == 0),
                snr_db=float(rng.uniform(5, 40)),
            )
        )
        t += d + float(rng.uniform(0.1, 0.8))
        k += 1
    return out


def _many(rec: Recording, variant: str, n: int, rng: np.random.Generator) -> pa.Table:
    """``n`` consecutive 1–20 s segments of ``rec`` built column-wise (a million rows in seconds)."""
    d = rng.uniform(1.0, 20.0, n)
    start = np.concatenate([[0.0], np.cumsum(d + 0.2)[:-1]])
    end = start + d
    ms = lambda x: np.char.zfill(np.round(x * 1000).astype(np.int64).astype(str), 8)  # noqa: E731
    ids = np.char.add(np.char.add(np.char.add(f"{rec.recording_id}_", ms(start)), "_"), ms(end))
    music = np.where(rng.uniform(size=n) < 0.3, rng.uniform(0, 0.4, n), 0.0)
    k = np.arange(n)
    words = np.array(WORDS)
    cols = {
        "segment_id": ids,
        "recording_id": np.full(n, rec.recording_id),
        "audio_path": np.full(n, rec.audio_path),
        "start_s": start,
        "end_s": end,
        "duration_s": d,
        "variant": np.full(n, variant),
        "text": np.char.add(np.char.add(words[k % len(words)], " "), words[(k * 7 + 3) % len(words)]),
        "language": np.where(k % 5 == 0, None, "nl"),
        "speaker": np.char.add("SPEAKER_0", (k % 3).astype(str)),
        "avg_logprob": rng.uniform(-1.2, -0.1, n),
        "no_speech_prob": rng.uniform(0, 0.5, n),
        "speech_ratio": 1.0 - music,
        "music_ratio": music,
        "vocal_music_ratio": music / 2,
        "noise_ratio": rng.uniform(0, 0.05, n),
        "overlap_ratio": np.where(k % 4 == 0, rng.uniform(0, 0.1, n), 0.0),
        "speaker_change": k % 6 == 0,
        "snr_db": rng.uniform(5, 40, n),
    }
    schema = SCHEMAS["segments"]
    return pa.table({f.name: pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type) for f in schema})


def _frames(duration_s: float, rng: np.random.Generator) -> tuple[Frames, Frames]:
    start = np.arange(0.0, max(duration_s - 0.96, 0.0), 0.48)
    end = start + 0.96
    wave = 0.5 + 0.5 * np.sin(start / 7.0)
    tags = Frames(
        "tags",
        start,
        end,
        {
            "speech": 1.0 - 0.6 * wave,
            "music": 0.6 * wave,
            "vocal_music": 0.2 * wave,
            "noise": rng.uniform(0, 0.1, start.size),
            "energy_db": -30.0 + 10 * wave,
        },
    )
    spk = Frames(
        "speakers",
        start,
        end,
        {"speech": 1.0 - 0.5 * wave, "overlap": rng.uniform(0, 0.2, start.size), "change": (start % 13 < 0.5) * 1.0},
    )
    return tags, spk


def make_explore_run(
    root: str | Path,
    n_recordings: int = 2,
    duration_s: float = 40.0,
    segments_per_recording: int | None = None,
    audio_files: int | None = None,
    seed: int = 0,
) -> Path:
    """``root/run`` with variants ``small`` (consecutive 1–8 s segments, some with music) and ``big`` (every
    third ``small`` segment, or ``segments_per_recording`` generated ones per recording, times past its end), rejected cuts of two stages and frame
    scores; the audio (``audio_files`` distinct tone files, default one per recording) under ``root/audio``."""
    from curate.stats import compute_stats, write_stats
    from curate.testing import tone, write_audio

    root = Path(root)
    rng = np.random.default_rng(seed)
    n_audio = audio_files or n_recordings
    files = [
        write_audio(root / "audio" / f"prog{i:03d}.flac", tone(duration_s, freq=180 + 40 * i, seed=i))
        for i in range(n_audio)
    ]
    recs = [
        Recording(
            f"prog/{i:03d}",  # a '/' in an id: never a path
            str(files[i % n_audio].resolve()),
            duration_s,
            16_000,
            1,
            "flac",
            title=f"Programme {i}",
            genre=("news", "sport")[i % 2],
            language="nl",
        )
        for i in range(n_recordings)
    ]
    run = RunDir(root / "run")
    manifest.write_records(run.recordings, recs, "recordings")
    manifest.write_records(run.decisions, [Decision(r.recording_id, True, "ingest") for r in recs], "decisions")
    small, big, rejected, cut = [], [], [], []
    for r in recs:
        segs = _segments(r, "small", rng, 8.0)
        small += segs
        big += [s.with_times(s.start_s, s.end_s, variant="big") for s in segs[::3]]
        for k, s in enumerate(segs[1::4]):
            score = float(rng.uniform(0.3, 0.9))
            cut_s = s.with_times(s.start_s, s.end_s, variant="small")
            rejected.append(RejectedSegment(cut_s, "clean_trim", REASONS[k % 2], score, f"mean score {score:.2f}"))
        for s in segs[2::7]:
            short = s.with_times(s.start_s, min(s.end_s, s.start_s + 0.6), variant="big")
            cut.append(RejectedSegment(short, "min_duration", REASONS[2], short.duration_s))
        tags, spk = _frames(r.duration_s, rng)
        manifest.write_table(run.scores_path("tags", r.recording_id), tags.to_arrow(), "tags")
        manifest.write_table(run.scores_path("speakers", r.recording_id), spk.to_arrow(), "speakers")
    manifest.write_records(run.variant_path("small") / "part-00000.parquet", small, "segments")
    with manifest.writer(run.variant_path("big") / "part-00000.parquet", "segments", row_group_rows=100_000) as w:
        if segments_per_recording is None:
            w.write(big)
        else:
            for r in recs:
                w.write(_many(r, "big", segments_per_recording, rng))
    manifest.write_records(run.rejected_dir("clean_trim") / "part-00000.parquet", rejected, "rejected")
    manifest.write_records(run.rejected_dir("min_duration") / "part-00000.parquet", cut, "rejected")
    write_stats(run.path, compute_stats(run.path, ["small", "big"], n_recordings * duration_s))
    run.write_run("explore-test", ["small", "big"])
    return run.path


__all__ = ["make_explore_run"]
