"""The sound-event tagger's own accuracy on the labelled real clips, and its speed.

python -m benchmarks.bench_tagger [--clips ../shared/data/realaudio]

Frame-level precision/recall of YAMNet's grouped scores (``score > 0.5``; music = music or vocal music) against
the clips' labels (:func:`curate.quality.load_labelled_clips`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from curate import audio
from curate.models import resolve
from curate.models.tagger import SoundTagger
from curate.quality import frame_accuracy, load_labelled_clips
from curate.stages.clean import cells, score_of


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "realaudio"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if not (Path(args.clips) / "INVENTORY.csv").is_file():
        print(f"no labelled clips at {args.clips}; skipped")
        return
    tagger = SoundTagger(resolve("yamnet:w8a8").path)
    clips = load_labelled_clips(Path(args.clips))
    scored: dict[str, list] = {"speech": [], "music": [], "vocal_music": []}
    t0, seconds = time.perf_counter(), 0.0
    for c in clips:
        x = audio.load(str(c.path))
        seconds += x.size / audio.SAMPLE_RATE
        frames = tagger.frames(x)
        a, b = cells(frames)
        for g in scored:
            scored[g].append((a, b, score_of(frames, g), c.labels[g]))
    took = time.perf_counter() - t0
    print(
        f"{len(clips)} labelled clips, {seconds / 60:.1f} min of audio, tagged in {took:.1f} s "
        f"({seconds / took:.0f}x real time, decoding included)"
    )
    print("| group | precision | recall | frames | positive frames |\n|---|---:|---:|---:|---:|")
    for g, rows in scored.items():
        acc = frame_accuracy(rows, g)
        print(f"| {g} | {acc.precision:.3f} | {acc.recall:.3f} | {acc.frames} | {acc.positives} |")


if __name__ == "__main__":
    main()
