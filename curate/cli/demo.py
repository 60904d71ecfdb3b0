"""``curate demo``: build the synthetic demo archive and run the demo pipeline on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.console import RayAddressOption, Runner, RunnerOption, out


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out_dir: Annotated[Path, typer.Option("--out", help="where the demo archive and runs go")] = Path("demo_out"),
        pipeline: Annotated[
            Path, typer.Option(help="pipeline to run on the demo archive (a file, or a bundled preset name)")
        ] = Path("demo"),
        runner: RunnerOption = Runner.ray,
        ray_address: RayAddressOption = None,
        seed: int = 0,
        real_audio: Annotated[
            Path | None,
            typer.Option(help="build the programmes from real recordings in DIR (INVENTORY.csv, flac/, annotations/)"),
        ] = None,
        pretrain_real_speech: Annotated[
            bool,
            typer.Option(
                help="pre-train only on the real speech of ../shared/data/realaudio (default: the best clean variant, then that real speech as the check that it learns)"
            ),
        ] = False,
    ) -> None:
        """Build the synthetic demo archive and run the demo pipeline on it; print the stats table, what the
        variants contain, the clean variants' operating curves; export and pre-train on the best clean variant."""
        from curate import presets
        from curate.cli.plots import save_run_plots
        from curate.cli.progress import run_with_progress
        from curate.demo.run import run_demo

        run_demo(
            out_dir,
            presets.locate("pipelines", pipeline),
            runner=runner.value,
            ray_address=ray_address,
            seed=seed,
            console=out,
            run=run_with_progress,
            plot=save_run_plots,
            real_audio=real_audio,
            pretrain_real_speech=pretrain_real_speech,
        )


__all__ = ["register"]
