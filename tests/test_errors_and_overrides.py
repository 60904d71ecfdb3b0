"""One error base caught once by the CLI, one ``--set`` parser, YAML aliases bounded (issue 24, items 3 and 6)."""

import time

import pytest
from typer.testing import CliRunner

from curate.cli.app import app
from curate.errors import ConfigError, CurateError, RecordingError, RunDirError, one_line
from curate.yamlconf import load_yaml, parse_set


def test_every_purposeful_error_is_a_curate_error():
    from curate.audio import AudioDecodeError
    from curate.catalog.read import CatalogError
    from curate.export.common import ExportError
    from curate.manifest import SchemaMismatchError
    from curate.models import ModelNotFoundError
    from curate.runners.derive import DeriveError

    for cls in (ConfigError, RecordingError, RunDirError, AudioDecodeError, CatalogError, ExportError):
        assert issubclass(cls, CurateError), cls
    for cls in (SchemaMismatchError, ModelNotFoundError, DeriveError):
        assert issubclass(cls, CurateError), cls
    assert issubclass(ConfigError, ValueError) and issubclass(ModelNotFoundError, FileNotFoundError)  # as before


def test_the_cli_catches_a_curate_error_once_as_one_line(monkeypatch, tmp_path):
    """A command that lets a CurateError through still ends in one ``error:`` line, exit 2, no traceback."""
    import curate.stats

    def broken(run_dir):
        raise RunDirError(f"{run_dir}: this run directory is broken in a known way; do X")

    monkeypatch.setattr(curate.stats, "load_stats", broken)
    res = CliRunner().invoke(app, ["stats", str(tmp_path)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert text.count("error:") == 1 and "broken in a known way; do X" in text and "Traceback" not in res.output


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    import curate.stats

    def bug(run_dir):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(curate.stats, "load_stats", bug)
    res = CliRunner().invoke(app, ["stats", str(tmp_path)])
    assert isinstance(res.exception, ZeroDivisionError)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("a.b=3", ("a.b", 3)),
        ("settings.published_format=%d/%m/%Y", ("settings.published_format", "%d/%m/%Y")),  # not YAML: its text
        ("x=[1, 2]", ("x", [1, 2])),
        ("flag=true", ("flag", True)),
        ("k=", ("k", None)),
        (" k =v", ("k", "v")),
    ],
)
def test_one_set_parser(item, expected):
    assert parse_set([item]) == [expected]


@pytest.mark.parametrize("item", ["novalue", "=3", " =3"])
def test_a_malformed_set_names_the_expected_shape(item):
    with pytest.raises(ConfigError, match=r"expected STAGE\.PARAM=VALUE"):
        parse_set([item], "STAGE.PARAM=VALUE")


def test_every_set_option_uses_the_one_parser():
    """The pipeline, selection, trainer and fine-tuning overrides all accept a non-YAML value as text."""
    from curate.config import apply_overrides
    from curate.export.select import load_selection
    from curate.w2v2.config import apply_overrides as trainer_overrides

    raw = apply_overrides({"settings": {}}, ["settings.published_format=%d/%m/%Y"])
    assert raw["settings"]["published_format"] == "%d/%m/%Y"
    assert trainer_overrides({}, ["train.max_steps=5"]) == {"train": {"max_steps": 5}}
    with pytest.raises(ConfigError, match=r"SECTION\.KEY=VALUE"):
        trainer_overrides({}, ["max_steps=5"])
    assert load_selection(None, ["split.method=none"]).split.method == "none"


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    from curate.config import load_pipeline

    assert len(BOMB) < 1024
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases expand to more than"):
        load_pipeline(path)
    assert time.perf_counter() - t0 < 5  # the 9^9-value expansion is never built (it took 31 s and 640 MB)
    assert load_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}  # ordinary aliases still work


def test_pointer_addresses_are_stripped_from_messages():
    a = one_line("[flac @ 0x7f3a2c004a40] invalid residual\n  at 0x55d5c1e2f000")
    b = one_line("[flac @ 0x7f11aa000b00] invalid residual\n  at 0x55d5c1e2aaaa")
    assert a == b == "[flac @ 0x…] invalid residual at 0x…"
