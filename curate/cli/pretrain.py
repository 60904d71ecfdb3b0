"""``curate pretrain CONFIG`` (wav2vec 2.0 pre-training) and ``curate export-hf CKPT OUT`` (a checkpoint in the
Hugging Face ``Wav2Vec2Model`` format; the older spelling ``curate pretrain export-hf CKPT OUT`` still works)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _export_hf(checkpoint: Path, out: Path) -> None:
    from curate.cli.console import out as stdout
    from curate.w2v2.export_hf import export_hf

    path = export_hf(checkpoint, out)  # a CheckpointError: the CLI's one line
    stdout.print(f"exported {checkpoint} → {path} (load with curate.w2v2.export_hf.load_hf_model)")


def register(app: typer.Typer) -> None:
    @app.command("export-hf")
    def export_hf_cmd(
        checkpoint: Annotated[Path, typer.Argument(help="pre-trainer checkpoint (best.pt / last.pt)")],
        out: Annotated[Path, typer.Argument(help="output directory for the Hugging Face model")],
    ) -> None:
        """Export a pre-trained checkpoint to the Hugging Face Wav2Vec2Model format."""
        _export_hf(checkpoint, out)

    @app.command(context_settings={"help_option_names": ["-h", "--help"]})
    def pretrain(
        config: Annotated[str, typer.Argument(help="config YAML or preset (base, large, tiny-cpu)")],
        args: Annotated[list[str] | None, typer.Argument(hidden=True)] = None,
        data: Annotated[Path | None, typer.Option(help="run directory or materialized directory (data.path)")] = None,
        variant: Annotated[str | None, typer.Option(help="variant of a run directory (data.variant)")] = None,
        out: Annotated[Path | None, typer.Option(help="output directory (train.out_dir)")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="override SECTION.KEY=VALUE (repeatable)")] = None,
        resume: Annotated[bool, typer.Option(help="continue from OUT/last.pt")] = False,
    ) -> None:
        """Pre-train wav2vec 2.0 on a curated variant (`curate export-hf CKPT OUT` exports a checkpoint)."""
        from curate.cli.console import console, fail, progress_bar
        from curate.cli.console import out as stdout
        from curate.errors import ConfigError

        if config == "export-hf":
            if not args or len(args) != 2:
                fail("usage: curate export-hf CKPT OUT")
            _export_hf(Path(args[0]), Path(args[1]))
            return
        if args:
            fail(f"unexpected argument(s) {' '.join(args)}; data and output go in --data/--out")
        from curate.w2v2.config import load_config
        from curate.w2v2.train import pretrain as run

        try:
            cfg = load_config(config, set_)
        except ConfigError as e:
            fail(str(e))
        data_path = data or (Path(cfg.data.path) if cfg.data.path else None)
        if data_path is None:
            fail("no data: pass --data RUN_DIR --variant NAME (or a materialized directory), or set data.path")
        out_dir = out or Path(cfg.train.out_dir)
        with progress_bar() as bar:
            task = bar.add_task("pre-train", total=cfg.train.max_steps, extra="")

            def on_log(r: dict) -> None:
                bar.update(
                    task,
                    completed=r["step"],
                    extra=f"loss {r['loss']:.3f} acc {r['accuracy']:.2f} "
                    f"{r['audio_s_per_s']:.0f} audio-s/s {r['audio_h']:.2f} h",
                )

            # a ConfigError, DataError, CheckpointError or TrainingHealthError: the CLI's one line
            summary = run(cfg, data_path, out_dir, variant=variant, resume=resume, on_log=on_log)
        console.print(
            f"{summary['steps']} steps, {summary['audio_h']:.2f} h audio ({summary['epochs']:.2f} epochs), "
            f"{summary['dropped_batches']} batches dropped (spread), val loss {summary['val_loss']}"
        )
        stdout.print(f"checkpoints and metrics: {out_dir}")
