"""``curate demo``: build the synthetic demo archive and run the demo pipeline on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.console import out


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out_dir: Annotated[Path, typer.Option("--out", help="where the demo archive and runs go")] = Path("demo_out"),
        pipeline: Annotated[
            Path, typer.Option(help="pipeline to run on the demo archive (a file, or a bundled preset name)")
        ] = Path("demo"),
        runner: Annotated[str, typer.Option(help="ray or local")] = "ray",
        seed: int = 0,
        real_audio: Annotated[
            Path | None,
            typer.Option(help="build the programmes from real recordings in DIR (INVENTORY.csv, flac/, annotations/)"),
        ] = None,
    ) -> None:
        """Build the synthetic demo archive and run the demo pipeline on it; print the stats table."""
        from curate import presets
        from curate.cli.progress import run_with_progress
        from curate.demo.run import run_demo

        run_demo(
            out_dir,
            presets.locate("pipelines", pipeline),
            runner=runner,
            seed=seed,
            console=out,
            run=run_with_progress,
            real_audio=real_audio,
        )


__all__ = ["register"]
