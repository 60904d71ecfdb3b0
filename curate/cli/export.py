"""``curate export``, ``curate materialize`` and ``curate select``: hand a variant to a trainer."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from curate.cli.console import JsonOption, RayAddressOption, RunDirArgument, Runner, RunnerOption
from curate.export.common import EMBEDDED, FORMATS
from curate.export.materialize import FORMATS as MATERIALIZE_FORMATS

ExportFormat = StrEnum("ExportFormat", {f: f for f in FORMATS})  # --format choices, one list each
MaterializeFormat = StrEnum("MaterializeFormat", {f: f for f in MATERIALIZE_FORMATS})

_SET_HELP = "override a selection option KEY=VALUE or split.KEY=VALUE (repeatable)"


def _selection(select_file: Path | None, set_: list[str] | None):
    from curate.cli.console import fail
    from curate.errors import ConfigError
    from curate.export.select import load_selection

    try:
        return load_selection(select_file, set_)
    except ConfigError as e:
        fail(str(e))


def _units_bar(bar: Any, label: str):
    state: dict[str, Any] = {}

    def on_plan(total: int, done: int) -> None:
        state["task"] = bar.add_task(label, total=total, completed=done, extra="")
        state["h"] = 0.0

    def on_unit(summary: dict[str, Any]) -> None:
        state["h"] += summary["audio_s"] / 3600
        bar.update(state["task"], advance=1, extra=f"{state['h']:.2f} h audio")

    return on_plan, on_unit


def _segments_bar(bar: Any, label: str) -> dict[str, Any]:
    """``on_export``/``on_segments`` callbacks of :func:`curate.export.export`: one task counting segments."""
    state: dict[str, Any] = {}

    def on_export(total: int) -> None:
        state["task"] = bar.add_task(label, total=total, extra="segments")

    def on_segments(n: int) -> None:
        bar.advance(state["task"], n)

    return {"on_export": on_export, "on_segments": on_segments}


def _select(
    run_dir: Any,
    variant: str,
    sel: Any,
    out: Path | None,
    operating_point: str | None,
    reference: Path | None,
    json_: bool,
) -> None:
    """``curate select``: the operating point (if asked), the selection's steps, the files written."""
    import dataclasses

    from curate.cli.console import fail, print_json
    from curate.cli.console import out as stdout
    from curate.export.select import load_segments, select, write_selection

    chosen: dict[str, Any] = {}
    segments = None
    if operating_point is not None:
        from curate.export import operating
        from curate.quality import load_ground_truth

        goal = operating.parse_goal(operating_point)  # a ConfigError reaches the CLI's one handler
        if reference is not None and not reference.is_file():
            fail(f"{reference}: reference timeline not found")
        truth = load_ground_truth(reference) if reference is not None else None
        try:
            segments, points = operating.variant_curve(run_dir, variant, truth, load_segments(run_dir, variant))
        except FileNotFoundError as e:
            fail(str(e))
        point = operating.choose(points, goal, variant)
        if not json_:
            stdout.print(operating.format_curve(variant, points, point), soft_wrap=True)
        sel = dataclasses.replace(sel, min_clean_score=point.threshold)
        chosen = {"operating_point": {"goal": str(goal), **point.as_dict()}, "curve": [p.as_dict() for p in points]}
    try:
        _, stats = select(run_dir, variant, sel, segments)
    except FileNotFoundError as e:
        fail(str(e))
    stats.update(chosen)
    if out is not None:
        write_selection(out, sel, {k: v for k, v in stats.items() if k != "curve"})
    if json_:
        print_json(stats)
        return
    if chosen:
        p = chosen["operating_point"]
        measured = "" if p["clean_single_pct"] is None else f", {p['clean_single_pct']:.1f} % clean single-speaker"
        stdout.print(
            f"operating point {p['goal']}: clean_score >= {p['threshold']:.4f} keeps {p['kept_pct']:.1f} % of "
            f"{variant}'s hours{measured}"
        )
    lines = ["| step | segments | hours |", "|---|---:|---:|"]
    lines += [f"| {s['step']} | {s['segments']:,} | {s['hours']:.3f} |" for s in stats["steps"]]
    lines += [f"| → {k} | {stats[k]['segments']:,} | {stats[k]['hours']:.3f} |" for k in ("train", "valid")]
    stdout.print("\n".join(lines))
    if out is not None:
        stdout.print(f"selection written to {out}/selection.yaml and selection.json")


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        run_dir: RunDirArgument,
        variant: Annotated[str, typer.Option(help="variant to export, e.g. wx-diar-3s")],
        format_: Annotated[ExportFormat, typer.Option("--format", help="the trainer's format", case_sensitive=False)],
        out_dir: Annotated[str, typer.Option("--out", help="output directory (local)")],
        select_file: Annotated[
            Path | None, typer.Option("--select", help="selection YAML (configs/selection/)")
        ] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
        runner: RunnerOption = Runner.ray,
        ray_address: RayAddressOption = None,
        shard_segments: Annotated[int, typer.Option(help="segments per shard (hf, webdataset)")] = 2000,
        shard_mb: Annotated[int, typer.Option(help="webdataset: start a new shard after this many MiB")] = 1024,
        sample_rate: Annotated[
            int, typer.Option(help="lhotse: resample the views lazily to this rate in Hz (0: keep native rates)")
        ] = 16000,
        downmix: Annotated[
            bool, typer.Option(help="lhotse: multi-channel sources as their channel mean (--no-downmix: MultiCuts)")
        ] = True,
        materialize: Annotated[
            bool, typer.Option(help="lhotse, nemo: cut 16 kHz mono FLAC files once instead of pointing into sources")
        ] = False,
    ) -> None:
        """Export a variant (optionally a selection of it) for fairseq, Lhotse, HF datasets, NeMo, WebDataset or
        Kaldi; the selection spec and its statistics are written next to the export."""
        from curate.cli.console import fail, local_out, progress_bar
        from curate.cli.console import out as stdout
        from curate.export import export

        out = local_out(out_dir)
        sel = _selection(select_file, set_)
        fmt = format_.value
        kw: dict[str, Any] = {
            "runner": runner.value,
            "ray_address": ray_address,
            "shard_segments": shard_segments,
            "shard_bytes": shard_mb << 20,
            "sample_rate": sample_rate or None,
            "downmix": downmix,
            "materialize": materialize,
        }
        if fmt in EMBEDDED:
            kw.pop("sample_rate")
        try:
            with progress_bar() as bar:
                if fmt == "fairseq" or materialize:  # the long part is cutting the audio: one step per recording
                    on_plan, on_unit = _units_bar(bar, "materialize")
                    kw.update(on_plan=on_plan, on_unit=on_unit)
                else:  # one step per segment written (hf, webdataset: cut and encoded)
                    kw.update(_segments_bar(bar, f"export {fmt}"))
                info = export(run_dir, variant, fmt, out, sel, **kw)
        except FileNotFoundError as e:  # CurateErrors (export, materialize, run directory): the CLI's one line
            fail(str(e))
        segs = ", ".join(f"{k}: {v:,} segments / {info['hours'][k]:.2f} h" for k, v in info["segments"].items())
        stdout.print(f"[green]exported[/] {variant} → {out} ({fmt}; {segs})")

    @app.command("materialize")
    def materialize_cmd(
        run_dir: RunDirArgument,
        variant: Annotated[str, typer.Option(help="variant to materialize")],
        out_dir: Annotated[str, typer.Option("--out", help="local output directory (rerun the command to resume)")],
        format_: Annotated[
            MaterializeFormat,
            typer.Option("--format", help="flac (one file per segment) or pcm16 (shards)", case_sensitive=False),
        ] = MaterializeFormat.flac,
        runner: RunnerOption = Runner.ray,
        ray_address: RayAddressOption = None,
        shard_mb: Annotated[int, typer.Option(help="pcm16 shard size in MiB")] = 1024,
        select_file: Annotated[Path | None, typer.Option("--select", help="selection YAML")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    ) -> None:
        """Cut a variant's segments out of the archive into FLAC files or raw 16 kHz int16 shards + index.parquet."""
        from curate.cli.console import fail, local_out, progress_bar, run_dir_here
        from curate.cli.console import out as stdout
        from curate.export.materialize import MaterializeError, materialize
        from curate.export.select import select, write_selection

        out = local_out(out_dir)
        sel = _selection(select_file, set_) if (select_file or set_) else None
        run_dir = run_dir_here(run_dir)
        try:
            segments = None
            if sel is not None:
                segments, stats = select(run_dir, variant, sel)
            with progress_bar() as bar:
                on_plan, on_unit = _units_bar(bar, "units")
                info = materialize(
                    run_dir,
                    variant,
                    out,
                    fmt=format_.value,
                    segments=segments,
                    runner=runner.value,
                    shard_bytes=shard_mb << 20,
                    ray_address=ray_address,
                    on_plan=on_plan,
                    on_unit=on_unit,
                )
            if sel is not None:
                write_selection(out, sel, stats)
        except (MaterializeError, FileNotFoundError) as e:
            fail(str(e))
        stdout.print(
            f"[green]materialized[/] {info['segments']:,} segments, {info['hours']:.2f} h → {out}/index.parquet"
            f" ({info['failed_recordings']} recordings failed; see failures.parquet)"
        )

    @app.command("select")
    def select_cmd(
        run_dir: RunDirArgument,
        variant: Annotated[str, typer.Option(help="variant to select from")],
        select_file: Annotated[Path | None, typer.Option("--select", help="selection YAML")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
        out: Annotated[Path | None, typer.Option(help="write selection.yaml and selection.json here")] = None,
        operating_point: Annotated[
            str | None,
            typer.Option(
                help="keep the segments above a clean-score threshold chosen on the variant's operating curve: "
                "clean=PCT (measured clean single-speaker %, needs --reference), kept=PCT (% of the variant's hours), "
                "clean=PCT,kept=PCT, or score=X (the threshold itself)"
            ),
        ] = None,
        reference: Annotated[
            Path | None, typer.Option(help="ground-truth timeline JSON of (a sample of) the run: measures clean %")
        ] = None,
        json_: JsonOption = False,
    ) -> None:
        """Dry-run a selection: print what each step keeps (and optionally save it). With --operating-point, first
        print the variant's operating curve (segments kept by their clean score: kept % of hours, and with
        --reference the measured clean %), pick the threshold that meets the point and keeps the most, and
        select with it (min_clean_score)."""
        from curate.cli.console import run_dir_here

        _select(run_dir_here(run_dir), variant, _selection(select_file, set_), out, operating_point, reference, json_)

    @app.command("cat")
    def cat_cmd(
        path: Annotated[str, typer.Argument(help="an audio file or URL (s3://…, gs://…)")],
        start: Annotated[float, typer.Argument(help="start, s")] = 0.0,
        end: Annotated[float | None, typer.Argument(help="end, s (default: the end of the file)")] = None,
    ) -> None:
        """Write audio (a range of it) to stdout as 16 kHz mono 16-bit WAV: Kaldi's wav.scp reads URLs with it."""
        import sys

        from curate.audio import AudioDecodeError
        from curate.cli.console import fail
        from curate.export.kaldi import cat_wav

        if sys.stdout.isatty():
            fail("curate cat writes WAV bytes: pipe or redirect stdout (curate cat URL > x.wav, … | sox - …)")
        try:
            cat_wav(path, sys.stdout.buffer, start, end)
            sys.stdout.buffer.flush()
        except (AudioDecodeError, RuntimeError) as e:
            fail(str(e), code=1)
        except BrokenPipeError:  # the reader stopped early (head, a segment read): not an error
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
