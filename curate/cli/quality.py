"""``curate quality RUN --reference ground_truth.json`` (what each variant's segments contain) and
``curate quality RUN --rttm DIR`` (diarization error rate of the variants with speaker labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.console import RunDirArgument


def register(app: typer.Typer) -> None:
    @app.command()
    def quality(
        run_dir: RunDirArgument,
        reference: Annotated[Path | None, typer.Option(help="ground-truth timeline JSON (the demo writes one)")] = None,
        rttm: Annotated[
            Path | None,
            typer.Option(help="reference speaker turns: an RTTM file or a directory of *.rttm (and *.uem) files"),
        ] = None,
        collar: Annotated[float, typer.Option(help="DER: forgiveness collar around reference boundaries, s")] = 0.0,
        skip_overlap: Annotated[bool, typer.Option(help="DER: do not score overlapped speech")] = False,
        plot: Annotated[
            bool, typer.Option(help="save RUN/plots/composition.png (with --reference) and RUN/plots/lengths.png")
        ] = False,
        tagger_clips: Annotated[
            Path | None,
            typer.Option(help="also score the sound-event tagger on labelled real clips (INVENTORY.csv, flac/)"),
        ] = None,
        duplicates: Annotated[
            Path | None,
            typer.Option(help="reruns/repeats JSON for audio_dedup (default: duplicates.json beside --reference)"),
        ] = None,
    ) -> None:
        """Score every variant against a reference timeline (clean single-speaker speech, music, sung music, noise,
        silence, overlap, speaker mixing, speech and clean speech kept; the *-clean variants first, with the targets
        they miss; writes RUN/quality.json) and/or reference RTTM (DER with pyannote.metrics; writes
        RUN/der.json); for a run with audio_dedup, rerun and repeat precision and recall against duplicates.json
        (RUN/dedup_quality.json)."""
        from curate.cli.console import fail, run_dir_edited

        if reference is None and rttm is None and not plot:
            fail("give --reference ground_truth.json and/or --rttm DIR (reference speaker turns), or --plot")
        with run_dir_edited(run_dir) as local:  # a URL run: its staging copy, the results pushed back
            _quality(local, reference, rttm, collar, skip_overlap, plot, tagger_clips, duplicates, str(run_dir))


def _quality(
    run_dir: Path,
    reference: Path | None,
    rttm: Path | None,
    collar: float,
    skip_overlap: bool,
    plot: bool,
    tagger_clips: Path | None,
    duplicates: Path | None,
    shown: str,
) -> None:
    """``shown``: the run directory as the user named it (a URL run is worked on in its staging copy)."""
    from curate import manifest
    from curate.cli.console import fail, out
    from curate.rundir import RunDir

    run = RunDir(run_dir)
    if not run.decisions.is_file():
        fail(f"{run_dir}: not a curate run directory (no decisions.parquet)")
    results = None
    if reference is not None:
        from curate.quality import Targets, as_dict, evaluate_run, format_quality, load_ground_truth

        if not reference.is_file():
            fail(f"{reference}: reference timeline not found")
        results = evaluate_run(run_dir, load_ground_truth(reference))
        manifest.write_json(run.quality_json, as_dict(results))
        out.print(format_quality(results, Targets()), soft_wrap=True)
        out.print(f"written: {shown.rstrip('/')}/{run.relative(run.quality_json)}")
    duplicates = duplicates or (reference.parent / "duplicates.json" if reference is not None else None)
    if duplicates is not None and duplicates.is_file() and run.repeats.is_file():
        import dataclasses
        import json

        from curate.quality import evaluate_run_dedup, format_dedup

        dq = evaluate_run_dedup(run_dir, json.loads(duplicates.read_text()))
        manifest.write_json(run_dir / "dedup_quality.json", dataclasses.asdict(dq))
        out.print("audio de-duplication against " + str(duplicates) + ":")
        out.print(format_dedup(dq), soft_wrap=True)
        out.print(f"written: {shown.rstrip('/')}/dedup_quality.json")
    if rttm is not None:
        from curate.export.rttm import der_dict, diarization_error, format_der, load_rttm, load_uem

        try:
            der = diarization_error(run_dir, load_rttm(rttm), load_uem(rttm), collar=collar, skip_overlap=skip_overlap)
        except (FileNotFoundError, ValueError) as e:
            fail(str(e))
        if not der:
            fail(f"{run_dir}: no variant has speaker labels; DER needs a diarized variant (wx-diar, …)")
        manifest.write_json(run_dir / "der.json", {"collar": collar, "skip_overlap": skip_overlap, **der_dict(der)})
        out.print(format_der(der), soft_wrap=True)
        out.print(f"written: {shown.rstrip('/')}/der.json")
    if plot:
        from curate.cli.plots import save_run_plots

        for p in save_run_plots(run_dir, results):
            out.print(f"plot: {shown.rstrip('/')}/{Path(p).relative_to(run_dir).as_posix()}", soft_wrap=True)
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
