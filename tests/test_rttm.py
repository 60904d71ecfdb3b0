"""RTTM export and DER against reference RTTM (pyannote.metrics) on the real conversation clips."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate import manifest
from curate.export import export
from curate.export.rttm import diarization_error, load_rttm, load_uem
from curate.schema import Segment

pytestmark = pytest.mark.realaudio

CONVERSATIONS = ("cv_en_pyannote_sample", "cv_en_ami_pyannote_dev00", "cv_en_ami_pyannote_trn05")


@pytest.fixture(scope="module")
def diarized_run(tmp_path_factory, realaudio: Path) -> tuple[Path, Path]:
    """A run over the conversation clips with variant ``ref`` (the reference turns as segments) and variant
    ``swapped`` (the same turns, the first speaker's first turn given to another speaker)."""
    from curate.config import load_pipeline
    from curate.presets import resolve
    from curate.runners import run_pipeline
    from curate.testing import make_catalog

    ann_dir = realaudio / "annotations"
    root = tmp_path_factory.mktemp("rttm")
    rows = [{"recording_id": c, "audio_path": str(realaudio / "flac" / f"{c}.flac")} for c in CONVERSATIONS]
    catalog = make_catalog(root / "catalog.csv", rows)
    run_dir = root / "run"
    run_pipeline(load_pipeline(resolve("pipelines", "seq")), catalog, run_dir, runner="local", verify_audio=False)
    ref = load_rttm(ann_dir)
    for variant, swap in (("ref", False), ("swapped", True)):
        segs = []
        for c in CONVERSATIONS:
            labels = ref[c].labels()
            for i, (turn, _, spk) in enumerate(ref[c].itertracks(yield_label=True)):
                if swap and i == 0:
                    spk = labels[1] if spk == labels[0] else labels[0]
                segs.append(
                    Segment.new(c, str(realaudio / "flac" / f"{c}.flac"), turn.start, turn.end, variant, speaker=spk)
                )
        manifest.write_records(run_dir / "variants" / variant / "part-00000.parquet", segs, "segments")
    return run_dir, ann_dir


def test_rttm_export_reads_back_with_pyannote(diarized_run, tmp_path):
    from pyannote.database.util import load_rttm as pyannote_load_rttm

    run_dir, ann_dir = diarized_run
    export(run_dir, "ref", "rttm", tmp_path)
    got = pyannote_load_rttm(tmp_path / "train.rttm")
    ref = load_rttm(ann_dir)
    assert set(got) == set(CONVERSATIONS)
    for c in CONVERSATIONS:  # segment times are rounded to the millisecond in ids only; turns are exact
        assert got[c].labels() == ref[c].labels()
        assert abs(got[c].get_timeline().duration() - ref[c].get_timeline().duration()) < 1e-6


def test_der_is_zero_for_the_reference_and_matches_pyannote(diarized_run):
    from pyannote.metrics.diarization import DiarizationErrorRate

    run_dir, ann_dir = diarized_run
    ref, uem = load_rttm(ann_dir), load_uem(ann_dir)
    res = diarization_error(run_dir, ref, uem)
    assert set(res) == {"ref", "swapped"}  # the seq variant has no speaker labels: not scored
    assert res["ref"].der_pct == pytest.approx(0.0, abs=1e-6) and res["ref"].recordings == 3
    swapped = res["swapped"]
    assert swapped.der_pct > 0 and swapped.confusion_pct == pytest.approx(swapped.der_pct)
    # pyannote's own computation on the exported RTTM gives the same number
    metric = DiarizationErrorRate()
    segs = manifest.read_table(run_dir / "variants" / "swapped", "segments").to_pylist()
    from curate.export.rttm import annotation

    for c in CONVERSATIONS:
        hyp = annotation(c, [(s["start_s"], s["end_s"], s["speaker"]) for s in segs if s["recording_id"] == c])
        metric(ref[c], hyp, **({"uem": uem[c]} if c in uem else {}))
    assert swapped.der_pct == pytest.approx(100 * abs(metric))


def test_cli_quality_rttm_and_export_rttm(diarized_run, tmp_path):
    from curate.cli.app import app

    run_dir, ann_dir = diarized_run
    res = CliRunner().invoke(app, ["quality", str(run_dir), "--rttm", str(ann_dir)])
    assert res.exit_code == 0, res.output
    assert "DER %" in res.output and "swapped" in res.output
    res = CliRunner().invoke(
        app, ["export", str(run_dir), "--variant", "seq", "--format", "rttm", "--out", str(tmp_path)]
    )
    assert res.exit_code != 0 and "no speaker labels" in res.output
