"""``curate corrupt librispeech|stems|preview|render``: the corruption simulator's corpora and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.console import RayAddressOption, Runner, RunnerOption

_COND = typer.Option(help="condition name (mix-noise-33, 2spk-concat …) or a preset YAML")


def register(app: typer.Typer) -> None:
    corrupt_app = typer.Typer(no_args_is_help=True, help="Corruption simulator for data-quality ablations.")
    app.add_typer(corrupt_app, name="corrupt")

    @corrupt_app.command("librispeech")
    def librispeech(
        root: Annotated[Path, typer.Argument(help="LibriSpeech folder (with subsets) or one subset folder")],
        out: Annotated[Path, typer.Option(help="run directory to write")],
        variant: Annotated[str, typer.Option(help="name of the segments variant")] = "librispeech",
        subset: Annotated[list[str] | None, typer.Option(help="only these subsets (repeatable)")] = None,
    ) -> None:
        """LibriSpeech → a run directory (one recording and one segment per utterance) the pre-trainer reads."""
        from curate.cli.console import fail, progress_bar
        from curate.cli.console import out as stdout
        from curate.corrupt.readers import CorpusError, librispeech_run_dir
        from curate.stats import format_table, load_stats

        try:
            with progress_bar() as bar:
                task = bar.add_task("probe", total=None, extra="")
                librispeech_run_dir(root, out, variant, subset, on_progress=lambda n: bar.advance(task, n))
        except CorpusError as e:
            fail(str(e))
        stdout.print(format_table(load_stats(out)))

    @corrupt_app.command("stems")
    def stems(
        music: Annotated[Path, typer.Option(help="FMA root (fma_large/ + fma_metadata/)")],
        out: Annotated[Path, typer.Option(help="stems folder (rerun the same command to resume)")],
        model: Annotated[str, typer.Option(help="Demucs model name")] = "htdemucs",
        repo: Annotated[Path | None, typer.Option(help="local folder with <model>.th / <model>.yaml")] = None,
        runner: RunnerOption = Runner.ray,
        ray_address: RayAddressOption = None,
        workers: Annotated[int | None, typer.Option(help="workers (default: one per GPU, or per CPU)")] = None,
        device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
        min_speech_ratio: Annotated[float, typer.Option(help="vocal stems below this speech ratio are dropped")] = 0.2,
        limit: Annotated[int | None, typer.Option(help="only the first N clips (by track id)")] = None,
    ) -> None:
        """Separate FMA clips into vocal and accompaniment stems with Demucs (Ray actor pool, GPU when present)."""
        from curate.cli.console import out as stdout
        from curate.cli.console import progress_bar
        from curate.corrupt.readers import read_fma
        from curate.corrupt.stems import StemsConfig, fma_items, read_stems_manifest, separate_stems

        items = fma_items(read_fma(music))[:limit]  # a CorpusError or StemsError: the CLI's one line
        cfg = StemsConfig(
            model=model, repo=str(repo) if repo else None, device=device, min_speech_ratio=min_speech_ratio
        )
        with progress_bar() as bar:
            task = bar.add_task("stems", total=len(items), extra="")
            separate_stems(
                items,
                out,
                cfg,
                runner=runner.value,
                num_workers=workers,
                address=ray_address,
                on_progress=lambda r: bar.advance(task, 1),
            )
        rows = read_stems_manifest(out)
        n_voc = sum(1 for r in rows if r["has_vocals"])
        stdout.print(
            f"{out / 'stems.parquet'}: {len(rows)} clips separated, {n_voc} with vocals, "
            f"{len(rows) - n_voc} instrumental (vocal stem dropped)"
        )

    @corrupt_app.command("preview")
    def preview(
        condition: Annotated[str, _COND],
        speech: Annotated[Path, typer.Option(help="run directory or LibriSpeech root")],
        out: Annotated[Path, typer.Option(help="folder for the WAV + JSON files")],
        noise: Annotated[Path | None, typer.Option(help="MUSAN root")] = None,
        music: Annotated[Path | None, typer.Option(help="FMA root")] = None,
        stems: Annotated[Path | None, typer.Option(help="stems folder from `curate corrupt stems`")] = None,
        variant: Annotated[str | None, typer.Option(help="variant of the run directory")] = None,
        n: Annotated[int, typer.Option("-n", help="number of examples")] = 8,
        seed: int = 0,
    ) -> None:
        """Write a handful of corrupted examples as WAV (with the clean input) and a sidecar JSON each."""
        from curate.cli.console import fail
        from curate.cli.console import out as stdout
        from curate.corrupt import load_condition
        from curate.corrupt.readers import build_sources
        from curate.corrupt.render import preview as run_preview
        from curate.corrupt.render import speech_segments

        try:
            cond = load_condition(condition)
            sources = build_sources(cond, noise, music, stems)
            segs, utts = speech_segments(speech, variant, limit=max(8 * n, 64), seed=seed)
            paths = run_preview(cond, segs, utts, sources, out, n=n, seed=seed)
        except FileNotFoundError as e:  # CurateErrors (condition, source, corpus, audio): the CLI's one line
            fail(str(e))
        stdout.print(f"{len(paths)} examples of {cond.name} in {out} (NN.wav, NN.clean.wav, NN.json)")

    @corrupt_app.command("render")
    def render(
        condition: Annotated[str, _COND],
        speech: Annotated[Path, typer.Option(help="run directory holding the variant to corrupt")],
        variant: Annotated[str, typer.Option(help="variant to corrupt")],
        out: Annotated[Path, typer.Option(help="new run directory (rerun the same command to resume)")],
        noise: Annotated[Path | None, typer.Option(help="MUSAN root")] = None,
        music: Annotated[Path | None, typer.Option(help="FMA root")] = None,
        stems: Annotated[Path | None, typer.Option(help="stems folder from `curate corrupt stems`")] = None,
        batch_size: Annotated[int, typer.Option(help="utterances per batch (the fraction applies per batch)")] = 16,
        seed: int = 0,
    ) -> None:
        """Materialize a corrupted copy of a variant (audio files + a run directory) for other trainers."""
        from curate.cli.console import fail, progress_bar
        from curate.cli.console import out as stdout
        from curate.corrupt import load_condition
        from curate.corrupt.readers import build_sources, run_utterances
        from curate.corrupt.render import render as run_render
        from curate.stats import format_table, load_stats

        if batch_size < 1:
            fail("--batch-size must be >= 1")
        try:
            cond = load_condition(condition)
            sources = build_sources(cond, noise, music, stems)
            n_items = len(run_utterances(speech, variant)[0])
            with progress_bar() as bar:
                task = bar.add_task("render", total=n_items, extra="")
                done = {"s": 0.0}

                def tick(items: int, audio_s: float) -> None:
                    done["s"] += audio_s
                    bar.update(task, advance=items, extra=f"{done['s'] / 3600:.3f} h audio")

                run_render(cond, speech, variant, sources, out, seed=seed, batch_size=batch_size, on_progress=tick)
        except FileNotFoundError as e:  # CurateErrors (condition, source, corpus, audio): the CLI's one line
            fail(str(e))
        stdout.print(format_table(load_stats(out)))
