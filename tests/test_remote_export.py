"""Exports of a run whose audio and run directory are on object storage (the moto S3 server of the ``s3``
fixture): lhotse cuts point at ``"url"`` sources that ``load_audio`` reads, and Kaldi's ``wav.scp`` pipes
through ``curate cat URL |``, a command that runs and gives curate's decode as WAV.

Skipped without ``moto[server]`` and ``s3fs`` (``pip install -e '.[storage,dev]'``)."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from curate import audio
from curate.cli.app import app
from curate.config import load_pipeline
from curate.export import export
from curate.export.materialize import to_int16
from curate.export.select import Selection, Split
from curate.rundir import mirror as remote
from curate.runners import run_pipeline

BUCKET = "curate-test"


@pytest.fixture(scope="module")
def run_url(s3_archive):
    """Two recordings in the bucket, run with pipelines/seq.yaml (5 s windows) into the bucket → the run's URL."""
    root, catalog = s3_archive("export-archive", n=2, duration_s=11.0)
    mp = pytest.MonkeyPatch()
    mp.setenv(remote.STAGING_ENV, str(root / "staging"))
    url = f"s3://{BUCKET}/runs/for-export"
    pipe = load_pipeline("pipelines/seq.yaml", ["naive_segment.window_s=5"])
    run_pipeline(pipe, catalog, url, runner="local")
    yield {"url": url, "root": root}
    mp.undo()


def local_decode(root, segment_audio_path: str, start: float, end: float) -> np.ndarray:
    return audio.load(root / "audio" / segment_audio_path.rsplit("/", 1)[1], start, end)


def test_lhotse_cuts_of_a_bucket_run_load(run_url, tmp_path):
    pytest.importorskip("smart_open", reason="lhotse reads URL sources through smart_open")
    from lhotse import CutSet

    export(run_url["url"], "seq", "lhotse", tmp_path, Selection(split=Split(method="none")))
    cuts = CutSet.from_file(tmp_path / "cuts_train.jsonl.gz")
    assert len(cuts) == 4  # 2 full 5 s windows of each recording
    for cut in cuts:
        src = cut.recording.sources[0]
        assert (src.type, src.source.startswith(f"s3://{BUCKET}/export-archive/audio/")) == ("url", True)
        x = cut.load_audio()[0]
        ref = local_decode(run_url["root"], src.source, cut.start, cut.end)
        np.testing.assert_allclose(x, ref, atol=1e-4)


def test_kaldi_wav_scp_of_a_bucket_run_runs(run_url, tmp_path):
    res = CliRunner().invoke(
        app, ["export", run_url["url"], "--variant", "seq", "--format", "kaldi", "--out", str(tmp_path), "--runner", "local"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "wav.scp reads them with `curate cat URL |`" in " ".join(res.output.split())
    entries = dict(line.split(" ", 1) for line in (tmp_path / "train" / "wav.scp").read_text().splitlines())
    assert len(entries) == 2
    for entry in entries.values():
        assert entry.startswith(f"curate cat s3://{BUCKET}/export-archive/audio/") and entry.endswith(" |")
        command = entry[: -len(" |")].replace("curate ", f"{sys.executable} -m curate.cli ", 1)  # as on PATH
        wav = subprocess.run(command, shell=True, capture_output=True, check=True).stdout
        x, sr = sf.read(io.BytesIO(wav), dtype="int16")
        url = entry.split()[2]
        assert sr == 16000 and len(x) in (16000 * 11, 16000 * 12)
        np.testing.assert_array_equal(x, to_int16(local_decode(run_url["root"], url, 0.0, None)))


def test_curate_cat_writes_a_range(run_url, tmp_path):
    url = f"s3://{BUCKET}/export-archive/audio/rec001.flac"
    out = tmp_path / "x.wav"
    with open(out, "wb") as f:
        subprocess.run([sys.executable, "-m", "curate.cli", "cat", url, "2.5", "4"], stdout=f, check=True)
    x, sr = sf.read(out, dtype="int16")
    assert (sr, len(x)) == (16000, 24000)
    np.testing.assert_array_equal(x, to_int16(local_decode(run_url["root"], url, 2.5, 4.0)))
