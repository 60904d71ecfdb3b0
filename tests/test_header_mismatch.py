"""A header that disagrees with the audio is never silent: the decoded duration wins and a warning row says
so; a truncated file becomes a failure row and decisions.parquet no longer says it was kept."""

import json
import re
import struct
import subprocess

import pytest

from curate import manifest
from curate.config import load_pipeline
from curate.runners import run_pipeline
from curate.testing import make_catalog, tone, write_audio


def _wav_claiming(path, holds_s, claims_s):
    """A 16-bit wav holding ``holds_s`` seconds whose header claims ``claims_s``."""
    write_audio(path, tone(holds_s), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    i = data.find(b"data")
    size = int(claims_s * 16000) * 2
    data[i + 4 : i + 8] = struct.pack("<I", size)
    data[4:8] = struct.pack("<I", size + i + 8 - 8)
    path.write_bytes(bytes(data))
    return path


def _flac_longer_than_its_header(path, part_s):
    """Two flac files joined with `-c copy`: the header says ``part_s``, ``2 × part_s`` decode."""
    part = write_audio(path.with_name("part.flac"), tone(part_s), 16000)
    cmd = ["ffmpeg", "-nostdin", "-v", "quiet", "-y", "-i", f"concat:{part}|{part}", "-c", "copy", str(path)]
    subprocess.run(cmd, check=True)
    return path


def _truncated_flac(path):
    write_audio(path, tone(40.0), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("header")
    files = {
        "wav_claims_more": _wav_claiming(root / "lie.wav", 30.7, 61.0),
        "flac_holds_more": _flac_longer_than_its_header(root / "joined.flac", 40.0),
        "truncated": _truncated_flac(root / "trunc.flac"),
        "good": write_audio(root / "good.flac", tone(31.0), 16000),
    }
    catalog = make_catalog(root / "catalog.csv", [{"recording_id": k, "audio_path": str(p)} for k, p in files.items()])
    out = root / "run"
    run_pipeline(load_pipeline("pipelines/seq.yaml"), catalog, out, runner="local")
    return {
        # errors in failures.parquet, notes on recordings that went on in warnings.parquet
        "failures": manifest.read_table(out / "failures.parquet", "failures").to_pylist()
        + manifest.read_table(out / "warnings.parquet", "warnings").to_pylist(),
        "segments": manifest.read_table(out / "variants" / "seq", "segments").to_pylist(),
        "recordings": {
            r["recording_id"]: r["duration_s"]
            for r in manifest.read_table(out / "recordings.parquet", "recordings").to_pylist()
        },
        "input_h": json.loads((out / "stats.json").read_text())["input_hours"],
        "decisions": {
            d["recording_id"]: d for d in manifest.read_table(out / "decisions.parquet", "decisions").to_pylist()
        },
    }


def _rows(run, rid):
    return [f for f in run["failures"] if f["recording_id"] == rid]


def test_a_wav_header_claiming_more_than_the_file_holds_is_a_warning(run):
    rows = [f for f in _rows(run, "wav_claims_more") if f["error_type"] == "HeaderMismatch"]
    assert rows and rows[0]["severity"] == "warning"
    assert "header says 61.00 s but the file holds 30.70 s" in rows[0]["message"]
    assert [s["end_s"] for s in run["segments"] if s["recording_id"] == "wav_claims_more"] == [30.0]


def test_audio_longer_than_its_header_is_segmented_to_the_end(run):
    rows = [f for f in _rows(run, "flac_holds_more") if "decoded duration is used" in f["message"]]
    assert rows and rows[0]["severity"] == "warning"
    assert re.search(r"header says 40\.00 s but (79\.\d\d|80\.00) s decode", rows[0]["message"])
    ends = sorted(s["end_s"] for s in run["segments"] if s["recording_id"] == "flac_holds_more")
    assert ends == [30.0, 60.0]  # ~80 s: two whole 30 s windows, not one (40 s)


def test_a_truncated_file_is_a_failure_and_not_kept(run):
    errors = [f for f in _rows(run, "truncated") if f["severity"] == "error"]
    assert errors and "truncated" in errors[0]["message"]
    decision = run["decisions"]["truncated"]
    assert decision["kept"] is False
    assert decision["stage"] == "segment" and "truncated" in decision["reason"]


def test_good_recordings_stay_kept(run):
    assert run["decisions"]["good"]["kept"] is True
    assert not [f for f in _rows(run, "good") if f["severity"] == "error"]


def test_recordings_table_and_stats_hold_the_decoded_durations(run):
    """recordings.parquet and the stats' input hours say what the audio holds, not what its header claimed."""
    durations = run["recordings"]
    assert 79.0 < durations["flac_holds_more"] <= 80.0  # the header said 40 s
    assert durations["wav_claims_more"] == pytest.approx(30.7, abs=0.01)  # probed from the data: right at ingest
    assert durations["good"] == pytest.approx(31.0, abs=0.01)
    processed_s = durations["flac_holds_more"] + durations["wav_claims_more"] + durations["good"]
    assert run["input_h"] == pytest.approx(processed_s / 3600, rel=1e-3)  # the truncated file is not input
