"""``curate quality RUN --reference ground_truth.json`` (what each variant's segments contain, and each clean
variant's operating curve), ``curate quality RUN --rttm DIR`` (diarization error rate of the variants with
speaker labels) and ``curate calibrate RUN --reference ground_truth.json`` (fit clean_trim's thresholds)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.console import JsonOption, RunDirArgument

SUMMARY = "Score a run's variants: against a reference timeline, reference RTTM (DER) or duplicates; plots."


def register(app: typer.Typer) -> None:
    @app.command(short_help=SUMMARY)
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
        json_: JsonOption = False,
        curve: Annotated[
            bool, typer.Option(help="with --reference: each clean variant's operating curve over clean_trim.music")
        ] = True,
    ) -> None:
        """Score every variant against a reference timeline (clean single-speaker speech, music, sung music, noise,
        silence, overlap, speaker mixing, speech and clean speech kept; the *-clean variants first, with the targets
        they miss; writes RUN/quality.json) and/or reference RTTM (DER with pyannote.metrics; writes
        RUN/der.json); for a run with audio_dedup, rerun and repeat precision and recall against duplicates.json
        (RUN/dedup_quality.json)."""
        from curate.cli.console import fail, run_dir_edited

        if reference is None and rttm is None and not plot:
            fail("give --reference ground_truth.json and/or --rttm DIR (reference speaker turns), or --plot")
        from curate.cli.console import print_json

        with run_dir_edited(run_dir) as local:  # a URL run: its staging copy, the results pushed back
            report = _quality(
                local, reference, rttm, collar, skip_overlap, plot, tagger_clips, duplicates, str(run_dir), not json_
            )
            if curve and reference is not None and not json_:
                _curves(local, reference)
        if json_:
            print_json(report)

    @app.command()
    def calibrate(
        run_dir: RunDirArgument,
        reference: Annotated[Path, typer.Option(help="ground-truth timeline JSON of the run's recordings")],
        variant: Annotated[
            list[str] | None, typer.Option(help="clean variant(s) to fit (default: every one with clean_trim)")
        ] = None,
        passes: Annotated[int, typer.Option(help="coordinate-descent passes over the parameter grid")] = 2,
        margin: Annotated[
            float,
            typer.Option(help="fit to targets this many points stricter (clean, >1 speaker): room for a held-out set"),
        ] = 0.0,
    ) -> None:
        """Fit clean_trim's thresholds (music, singing, noise, overlap, turns, smoothing, edges, re-joining) on a
        labelled run — a development set, never the one you report — for the most clean speech kept under the
        targets (>= 95 % clean single-speaker, <= 2 % music, <= 0.5 % sung, <= 5 % segments with two speakers).
        Re-derives each clean variant in memory from the saved passes (no model runs); writes
        RUN/calibration.yaml (clean_trim params per variant) and prints the --set line that applies them."""
        from curate.cli.console import fail, run_dir_edited

        if not reference.is_file():
            fail(f"{reference}: reference timeline not found")
        with run_dir_edited(run_dir) as local:
            _calibrate(local, reference, variant, passes, str(run_dir), margin)


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
    text: bool = True,
) -> dict:
    """``shown``: the run directory as the user named it (a URL run is worked on in its staging copy); ``text``:
    print the tables (else only the returned report: what was written, by kind, for ``--json``)."""
    from curate import manifest
    from curate.cli.console import fail
    from curate.cli.console import out as stdout
    from curate.rundir import RunDir

    report: dict = {"run_dir": shown}

    def say(*args, **kw) -> None:  # the tables and "written:" lines, or nothing with --json
        if text:
            stdout.print(*args, **kw)

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
        report["quality"] = as_dict(results)
        say(format_quality(results, Targets()), soft_wrap=True)
        say(f"written: {shown.rstrip('/')}/{run.relative(run.quality_json)}")
    duplicates = duplicates or (reference.parent / "duplicates.json" if reference is not None else None)
    if duplicates is not None and duplicates.is_file() and run.repeats.is_file():
        import dataclasses
        import json

        from curate.quality import evaluate_run_dedup, format_dedup

        dq = evaluate_run_dedup(run_dir, json.loads(duplicates.read_text()))
        manifest.write_json(run_dir / "dedup_quality.json", dataclasses.asdict(dq))
        report["dedup"] = dataclasses.asdict(dq)
        say("audio de-duplication against " + str(duplicates) + ":")
        say(format_dedup(dq), soft_wrap=True)
        say(f"written: {shown.rstrip('/')}/dedup_quality.json")
    if rttm is not None:
        from curate.export.rttm import der_dict, diarization_error, format_der, load_rttm, load_uem

        der = diarization_error(run_dir, load_rttm(rttm), load_uem(rttm), collar=collar, skip_overlap=skip_overlap)
        if not der:
            fail(f"{run_dir}: no variant has speaker labels; DER needs a diarized variant (wx-diar, …)")
        report["der"] = {"collar": collar, "skip_overlap": skip_overlap, **der_dict(der)}
        manifest.write_json(run_dir / "der.json", report["der"])
        say(format_der(der), soft_wrap=True)
        say(f"written: {shown.rstrip('/')}/der.json")
    if plot:
        from curate.cli.plots import save_run_plots

        report["plots"] = [
            f"{shown.rstrip('/')}/{Path(p).relative_to(run_dir).as_posix()}" for p in save_run_plots(run_dir, results)
        ]
        for p in report["plots"]:
            say(f"plot: {p}", soft_wrap=True)
    if tagger_clips is not None:
        report["tagger"] = _tagger_table(tagger_clips)
        say(report["tagger"], soft_wrap=True)
    return report


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


def _curves(run_dir: Path, reference: Path) -> None:
    from curate import calibrate
    from curate.cli.console import out
    from curate.errors import CurateError
    from curate.quality import load_ground_truth

    truth = load_ground_truth(reference)
    for v, d in calibrate.clean_variants(run_dir).items():
        try:
            data = calibrate.load(run_dir, truth, v)
        except CurateError as e:
            out.print(f"no operating curve for {v}: {e}")
            continue
        out.print(calibrate.format_curve(v, calibrate.curve(data, calibrate.trim_params(d["stages"]))), soft_wrap=True)


def _calibrate(
    run_dir: Path, reference: Path, variants: list[str] | None, passes: int, shown: str, margin: float = 0.0
) -> None:
    import yaml

    from curate import calibrate, manifest
    from curate.cli.console import fail, out
    from curate.quality import Targets, format_quality, load_ground_truth
    from curate.rundir import RunDir

    truth = load_ground_truth(reference)
    if not 0 <= margin < 5:
        fail(f"--margin must be in [0, 5) points, got {margin}")
    t = Targets()
    goal = Targets(
        t.clean_single_pct + margin, t.music_pct, t.sung_pct, t.multi_speaker_pct - margin, t.clean_recall_pct
    )
    found = calibrate.clean_variants(run_dir)
    names = variants or sorted(found)
    if not names:
        fail(f"{shown}: no derived variant with a clean_trim stage in run.json; run pipelines/clean.yaml first")
    fitted: dict[str, dict] = {}
    for v in names:
        data = calibrate.load(run_dir, truth, v)  # a CurateError (no such variant …) reaches the CLI's one handler
        start = calibrate.trim_params(found[v]["stages"])
        before = calibrate.score(data, start)
        params, after = calibrate.fit(
            data, start, targets=goal, passes=passes, log=lambda m, v=v: out.print(f"  {v}: {m}")
        )
        out.print(format_quality({f"as run: {v}": before, f"fitted: {v}": after}, Targets()), soft_wrap=True)
        out.print("where the cut time went (stage, reason, seconds, % clean speech):")
        for st, why, cut, clean in calibrate.where_it_went(data, params):
            out.print(f"  {st} {why}: {cut:.1f} s, {clean:.0f} % clean speech")
        fitted[v] = {"from": found[v]["from"], "clean_trim": params}
        sets = " ".join(f"--set clean_trim.{k}={'null' if x is None else x}" for k, x in params.items())
        out.print(
            f"apply: curate derive {shown} --from {found[v]['from']} --pipeline pipelines/post/{v}.yaml --force {sets}"
        )
    head = f"# curate calibrate {shown} --reference {reference}: clean_trim params fitted per clean variant\n"
    manifest.atomic_write_text(RunDir(run_dir).calibration, head + yaml.safe_dump(fitted, sort_keys=False))
    out.print(f"written: {shown.rstrip('/')}/calibration.yaml")
