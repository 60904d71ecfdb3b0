"""`curate validate` (and any run) rejects what would fail later: non-finite numbers, unknown devices and
compute types, models that cannot be found; each with a one-line message, before any data moves."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli.app import app
from curate.config import load_pipeline
from curate.errors import ConfigError
from curate.runners import run_pipeline
from curate.testing import make_archive

REPO = Path(__file__).resolve().parents[1]
SEQ = REPO / "pipelines" / "seq.yaml"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", ".NaN", "nan", "inf"])
@pytest.mark.parametrize("key", ["naive_segment.window_s", "settings.min_duration_s", "duration_filter.max_s"])
def test_non_finite_numbers_are_rejected(key, value):
    with pytest.raises(ConfigError, match=rf"{key.split('.')[1]}: expected a finite number"):
        load_pipeline(SEQ, [f"{key}={value}"])


def test_non_finite_numbers_fail_validate_in_one_line():
    res = CliRunner().invoke(app, ["validate", str(SEQ), "--set", "naive_segment.window_s=.nan"])
    assert res.exit_code != 0
    assert "expected a finite number" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(
    ("pipeline", "override", "text"),
    [
        ("whisperx.yaml", "wx_transcribe.compute_type=banana", "compute_type: must be one of"),
        ("whisperx.yaml", "wx_transcribe.device=gpu0", "device: device must be one of auto, cpu, cuda, got 'gpu0'"),
        ("whisperx.yaml", "wx_diarize.device=gpu0", "device must be one of"),
        ("whisperx.yaml", "wx_align.device=gpu0", "device must be one of"),
        ("sad.yaml", "sad_segment.device=gpu0", "device must be one of"),
        ("whisper.yaml", "whisper_transcribe.device=gpu0", "device must be"),
        ("whisper.yaml", "whisper_transcribe.compute_type=banana", "compute_type must be one of"),
    ],
)
def test_bad_device_and_compute_type_are_rejected(pipeline, override, text):
    with pytest.raises(ConfigError) as e:
        load_pipeline(REPO / "pipelines" / pipeline, [override])
    assert text in str(e.value)
    res = CliRunner().invoke(app, ["validate", str(REPO / "pipelines" / pipeline), "--set", override])
    assert res.exit_code != 0 and text in " ".join(res.output.split()) and "Traceback" not in res.output


@pytest.mark.parametrize(
    "override",
    ["whisper_transcribe.model=faster-whisper:large-v9", "whisper_transcribe.model=/no/such/model.bin"],
)
def test_a_model_that_cannot_be_found_fails_validate(override, tmp_path, monkeypatch):
    from curate.config import check_models

    monkeypatch.delenv("CURATE_MODELS", raising=False)
    pipe = load_pipeline(REPO / "pipelines" / "whisper.yaml", [override])
    with pytest.raises(ConfigError, match=r"not found|does not exist"):
        check_models(pipe)
    res = CliRunner().invoke(app, ["validate", str(REPO / "pipelines" / "whisper.yaml"), "--set", override])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "large-v9" in res.output or "/no/such/model.bin" in res.output
    ok = CliRunner().invoke(
        app, ["validate", "--no-models", str(REPO / "pipelines" / "whisper.yaml"), "--set", override]
    )
    assert ok.exit_code == 0, ok.output  # a laptop without the model store can still check the rest


def test_a_run_with_a_missing_model_fails_before_any_data_moves(tmp_path, monkeypatch):
    monkeypatch.delenv("CURATE_MODELS", raising=False)
    catalog = make_archive(tmp_path / "a", n=1, duration_s=5.0)
    pipe = load_pipeline(REPO / "pipelines" / "whisper.yaml", ["whisper_transcribe.model=faster-whisper:large-v9"])
    with pytest.raises(ConfigError, match="large-v9"):
        run_pipeline(pipe, catalog, tmp_path / "run", runner="local")
    assert not (tmp_path / "run").exists()
