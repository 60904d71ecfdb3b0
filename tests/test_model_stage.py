"""Every model stage finds its models one way (``ModelStage``): ``curate validate`` refuses exactly what a
worker's set-up would refuse, and ``settings.allow_download`` reaches every stage's set-up."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from curate import models, registry
from curate.cli.app import app
from curate.config import check_models, load_pipeline
from curate.errors import ConfigError
from curate.runners.shard import PipelineWorker
from curate.stages.base import ModelStage, Transform

# each model stage with one of its models named so that it is nowhere: not a path, not in the store, not bundled
MISSING = {
    "sad_segment": {"model": "pyannote:not-here"},
    "tag_events": {"model": "yamnet:not-here"},
    "tag_speakers": {"model": "pyannote:not-here"},
    "tag_voices": {"model": "resemblyzer:not-here"},
    "whisper_transcribe": {"model": "faster-whisper:not-here"},
    "wx_align": {"model": "wav2vec2:nobody/not-here", "fallback": "error"},
    "wx_diarize": {"segmentation": "pyannote:not-here"},
    "wx_transcribe": {"model": "faster-whisper:not-here"},
}


def test_every_model_stage_is_a_model_stage():
    """The table below covers every stage that loads a model, and each of them shares the one resolution."""
    stages = {n: cls for n, cls in registry.load_all().items() if cls.__module__.startswith("curate.stages.")}
    loading = {n for n, cls in stages.items() if issubclass(cls, Transform) and cls.setup is not Transform.setup}
    assert loading == set(MISSING)
    assert all(issubclass(stages[n], ModelStage) for n in MISSING)


def _pipeline(tmp_path, stage: str, download: bool):
    spec = {"stage": stage, **MISSING[stage], "emit": "out"}
    raw = {"name": "t", "settings": {"allow_download": download, "model_store": str(tmp_path / "store")}}
    raw["passes"] = {"p": [spec]}
    path = tmp_path / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def no_store(monkeypatch, tmp_path):
    monkeypatch.delenv("CURATE_MODELS", raising=False)
    (tmp_path / "store").mkdir()


@pytest.mark.parametrize("stage", sorted(MISSING))
def test_validate_refuses_exactly_what_worker_setup_refuses(stage, tmp_path, no_store):
    path = _pipeline(tmp_path, stage, download=False)
    pipe = load_pipeline(path)
    with pytest.raises(ConfigError) as validated:
        check_models(pipe)
    with pytest.raises(ConfigError) as set_up:
        PipelineWorker(pipe, tmp_path / "run").setup()
    assert str(validated.value) == str(set_up.value)
    assert str(set_up.value).startswith(f"{stage}: ") and "not-here" in str(set_up.value)
    res = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "400"})
    assert res.exit_code == 2 and "not-here" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("stage", sorted(MISSING))
def test_allow_download_reaches_every_stage_setup(stage, tmp_path, no_store, monkeypatch):
    """With ``settings.allow_download``, validate passes and the set-up downloads (here: would, into the store)."""
    asked = []

    def fetch(spec, store=None):
        asked.append((spec, str(store)))
        raise RuntimeError("no network in this test")

    monkeypatch.setattr(models, "fetch", fetch)
    pipe = load_pipeline(_pipeline(tmp_path, stage, download=True))
    check_models(pipe)
    with pytest.raises(RuntimeError, match="no network"):
        PipelineWorker(pipe, tmp_path / "run").setup()
    assert asked and "not-here" in asked[0][0] and asked[0][1] == str(tmp_path / "store")
