"""Every YAML in the repo loads and validates (STYLE rule 5): a broken config fails here, not on a GPU node."""

from pathlib import Path

import pytest

from curate.config import load_pipeline, parse_pipeline
from curate.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
PIPELINES = sorted((REPO / "pipelines").rglob("*.yaml"))
CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


def _loader(path: Path):
    """The validating loader for a config file, by the folder it lives in."""
    kind = path.relative_to(REPO / "configs").parts[0]
    if kind == "pretrain":
        from curate.w2v2.config import load_config

        return load_config
    if kind == "corruption":
        from curate.corrupt import load_condition_config

        return load_condition_config
    if kind == "selection":
        from curate.export.select import load_selection

        return load_selection
    if kind in ("ablations", "finetune"):
        from curate.ablation.config import load_any_config

        return load_any_config
    raise AssertionError(f"{path}: no validating loader registered for configs/{kind}/ — add one here")


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_pipeline_validates(path):
    if path.parent.name == "post":  # derive-only pipelines: their sources come from an existing run
        import yaml

        raw = yaml.safe_load(path.read_text())
        sources = [d["from"] for d in raw["derive"].values()]
        pipe = load_pipeline(path, available_variants=sources)
    else:
        pipe = load_pipeline(path)
    assert pipe.variants(), f"{path} emits no variant"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_config_validates(path):
    _loader(path)(path)


def test_the_demo_pipeline_covers_the_thesis_variants():
    variants = set(load_pipeline(REPO / "pipelines" / "demo.yaml").variants())
    assert "seq" in variants


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "x", "passes": {"p": [{"stage": "nope"}]}}, "unknown stage 'nope'"),
        ({"name": "x", "passes": {"p": [{"stage": "naive_segmnt"}]}}, "Did you mean 'naive_segment'"),
        ({"name": "x", "passes": {"p": [{"stage": "naive_segment", "window": 3}]}}, "unknown parameter"),
        ({"name": "x", "passes": {"p": [{"stage": "naive_segment", "window_s": "abc"}]}}, "expected a number"),
        ({"name": "x", "passes": {"p": [{"stage": "naive_segment", "window_s": -1}]}}, "must be > 0"),
        ({"name": "x", "filters": [{"stage": "naive_segment"}]}, "only Filter and Aggregate"),
        ({"name": "x", "passes": {"p": [{"stage": "genre_filter"}]}}, "is not a Transform"),
        (
            {
                "name": "x",
                "passes": {
                    "p": [{"stage": "naive_segment", "emit": "a"}],
                    "q": [{"stage": "naive_segment", "emit": "a"}],
                },
            },
            "emitted twice",
        ),
        (
            {"name": "x", "derive": {"b": {"from": "a", "stages": [{"stage": "naive_segment"}]}}},
            "not a variant emitted",
        ),
        ({"passes": {}}, "missing 'name'"),
        ({"name": "x", "pases": {}}, "unknown top-level key"),
        ({"name": "x", "settings": {"shard_size": 0}}, "shard_size must be >= 1"),
    ],
)
def test_bad_pipelines_fail_before_any_work(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_pipeline(raw)


def test_overrides(tmp_path):
    pipe = load_pipeline(REPO / "pipelines" / "seq.yaml", ["naive_segment.window_s=10", "settings.shard_size=3"])
    assert pipe.passes[0].stages[0].window_s == 10.0 and pipe.settings.shard_size == 3
    with pytest.raises(ConfigError, match="no stage named"):
        load_pipeline(REPO / "pipelines" / "seq.yaml", ["nostage.x=1"])
    with pytest.raises(ConfigError, match=r"expected STAGE\.PARAM=VALUE"):
        load_pipeline(REPO / "pipelines" / "seq.yaml", ["window_s=1"])


def test_cli_validate(tmp_path):
    from typer.testing import CliRunner

    from curate.cli.app import app

    ok = CliRunner().invoke(app, ["validate", str(REPO / "pipelines" / "seq.yaml")])
    assert ok.exit_code == 0 and "seq" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npasses:\n  p:\n    - stage: naive_segment\n      window_s: -3\n")
    res = CliRunner().invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2 and "window_s must be > 0" in res.output


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "pipeline file not found"), ("name: [unclosed", "not valid YAML"), ("- a\n- b\n", "YAML mapping")],
)
def test_unreadable_yaml_names_the_file_and_problem(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        load_pipeline(path)
    assert str(path) in str(e.value)
