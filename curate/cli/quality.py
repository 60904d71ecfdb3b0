"""`curate quality RUN --reference ground_truth.json`: what each variant's segments contain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def quality(
        run_dir: Annotated[Path, typer.Argument(help="a curate run directory")],
        reference: Annotated[Path, typer.Option(help="ground-truth timeline JSON (the demo writes one)")],
        tagger_clips: Annotated[
            Path | None,
            typer.Option(help="also score the sound-event tagger on labelled real clips (INVENTORY.csv, flac/)"),
        ] = None,
    ) -> None:
        """Score every variant against a reference timeline: clean single-speaker speech, music, sung music,
        noise, silence, overlap, speaker mixing, speech and clean speech kept; the *-clean variants first, with
        the targets they miss. Writes RUN/quality.json."""
        from curate import manifest
        from curate.cli.console import fail, out
        from curate.quality import Targets, as_dict, evaluate_run, format_quality, load_ground_truth

        if not reference.is_file():
            fail(f"{reference}: reference timeline not found")
        if not (run_dir / "decisions.parquet").is_file():
            fail(f"{run_dir}: not a curate run directory (no decisions.parquet)")
        results = evaluate_run(run_dir, load_ground_truth(reference))
        manifest.write_json(run_dir / "quality.json", as_dict(results))
        out.print(format_quality(results, Targets()), soft_wrap=True)
        out.print(f"written: {run_dir / 'quality.json'}")
        if tagger_clips is not None:
            out.print(_tagger_table(tagger_clips), soft_wrap=True)


def _tagger_table(root: Path) -> str:
    """Frame-level precision/recall of the YAMNet groups on the labelled clips under ``root``."""
    from curate import audio
    from curate.models import resolve
    from curate.models.tagger import SoundTagger
    from curate.quality import frame_accuracy, load_labelled_clips
    from curate.stages.clean import cells, score_of

    tagger = SoundTagger(resolve("yamnet:w8a8").path)
    scored: dict[str, list] = {"speech": [], "music": []}
    clips = load_labelled_clips(root)
    for c in clips:
        frames = tagger.frames(audio.load(str(c.path)))
        a, b = cells(frames)
        for g in scored:
            scored[g].append((a, b, score_of(frames, g), c.labels[g]))
    lines = [
        f"tagger on {len(clips)} labelled clips ({root}):",
        "| group | precision | recall | frames |",
        "|---|---:|---:|---:|",
    ]
    for g, rows in scored.items():
        acc = frame_accuracy(rows, g)
        lines.append(f"| {g} | {acc.precision:.3f} | {acc.recall:.3f} | {acc.frames} |")
    return "\n".join(lines) + "\n"
