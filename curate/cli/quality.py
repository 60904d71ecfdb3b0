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
        duplicates: Annotated[
            Path | None,
            typer.Option(help="reruns/repeats JSON for audio_dedup (default: duplicates.json beside --reference)"),
        ] = None,
    ) -> None:
        """Score every variant against a reference timeline: speech/music/noise/silence shares, speaker
        mixing, speech kept (RUN/quality.json); and, for a run with audio_dedup, rerun and repeat precision and
        recall against duplicates.json (RUN/dedup_quality.json)."""
        from curate import manifest
        from curate.cli.console import fail, out
        from curate.quality import as_dict, evaluate_run, format_quality, load_ground_truth

        if not reference.is_file():
            fail(f"{reference}: reference timeline not found")
        if not (run_dir / "decisions.parquet").is_file():
            fail(f"{run_dir}: not a curate run directory (no decisions.parquet)")
        results = evaluate_run(run_dir, load_ground_truth(reference))
        manifest.write_json(run_dir / "quality.json", as_dict(results))
        out.print(format_quality(results), soft_wrap=True)
        out.print(f"written: {run_dir / 'quality.json'}")
        duplicates = duplicates or reference.parent / "duplicates.json"
        if duplicates.is_file() and (run_dir / "repeats.parquet").is_file():
            import dataclasses
            import json

            from curate.quality import evaluate_run_dedup, format_dedup

            dq = evaluate_run_dedup(run_dir, json.loads(duplicates.read_text()))
            manifest.write_json(run_dir / "dedup_quality.json", dataclasses.asdict(dq))
            out.print("audio de-duplication against " + str(duplicates) + ":")
            out.print(format_dedup(dq), soft_wrap=True)
            out.print(f"written: {run_dir / 'dedup_quality.json'}")
