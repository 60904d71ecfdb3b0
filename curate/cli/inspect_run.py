"""``curate inspect RUN``: what a variant kept and dropped of each recording; one recording's segments as a table
or as subtitles (``--srt``/``--vtt``) to watch next to the programme."""

from __future__ import annotations

from typing import Annotated

import typer

from curate.cli.console import JsonOption, RunDirArgument


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_cmd)


def inspect_cmd(
    run_dir: RunDirArgument,
    variant: Annotated[str | None, typer.Option(help="variant to inspect (default: the run's only variant)")] = None,
    recording: Annotated[str | None, typer.Option(help="one recording: list its segments")] = None,
    srt: Annotated[bool, typer.Option("--srt", help="with --recording: its segments as SubRip subtitles")] = False,
    vtt: Annotated[bool, typer.Option("--vtt", help="with --recording: its segments as WebVTT subtitles")] = False,
    json_: JsonOption = False,
) -> None:
    """Kept and dropped time per recording of a variant, dropped seconds per reason; --recording ID lists its segments
    (--srt/--vtt)."""
    from curate import manifest
    from curate.cli.console import fail, out, print_json, run_dir_here
    from curate.errors import RunDirError
    from curate.rundir import RunDir
    from curate.stats import format_recording_times, recording_times

    if (srt or vtt) and recording is None:
        fail("--srt/--vtt write one recording's segments: add --recording ID")
    if srt and vtt:
        fail("choose one of --srt and --vtt")
    run = RunDir(run_dir_here(run_dir))
    try:
        variant = variant or run.only_variant()
        if recording is None:
            rows = recording_times(run.path, variant)
            print_json(rows) if json_ else out.print(format_recording_times(rows, variant), soft_wrap=True)
            return
        table = manifest.read_table(run.variant_dir(variant), "segments")
    except (RunDirError, FileNotFoundError) as e:
        fail(str(e))
    import pyarrow.compute as pc

    segs = sorted(table.filter(pc.equal(table["recording_id"], recording)).to_pylist(), key=lambda r: r["start_s"])
    if not segs and recording not in {r["recording_id"] for r in recording_times(run.path, variant)}:
        fail(f"{run_dir}: no recording '{recording}' in recordings.parquet")
    if srt or vtt:
        from curate.export import subtitles

        typer.echo(subtitles.srt(segs) if srt else subtitles.vtt(segs), nl=False)
    elif json_:
        print_json([{k: v for k, v in r.items() if k != "words"} for r in segs])
    else:
        lines = [f"{recording} in {variant}: {len(segs)} segments", "", "| start s | end s | s | speaker | text |"]
        lines.append("|---:|---:|---:|---|---|")
        lines += [
            f"| {r['start_s']:.2f} | {r['end_s']:.2f} | {r['duration_s']:.2f} | {r['speaker'] or ''} | "
            f"{' '.join(str(r['text'] or '').split())} |"
            for r in segs
        ]
        out.print("\n".join(lines), soft_wrap=True, markup=False, highlight=False)
