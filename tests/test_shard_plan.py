"""Shard planning: ``shard_size`` recordings per shard, or ``settings.shard_hours`` of audio per shard."""

import pytest

from curate.config import parse_pipeline
from curate.errors import ConfigError
from curate.runners.driver import plan_shards

H = 3600.0


@pytest.mark.parametrize(
    ("durations_h", "shard_size", "shard_hours", "expected"),
    [
        # shard_hours unset: shard_size recordings each, whatever their length (today's rule)
        ([1, 1, 1, 1, 1], 2, None, [2, 2, 1]),
        ([0.01] * 3, 8, None, [3]),
        # grouped until the summed duration reaches shard_hours
        ([1, 1, 1, 1, 1], 2, 2.0, [2, 2, 1]),
        ([0.5] * 7, 2, 1.0, [2, 2, 2, 1]),
        ([0.4, 0.4, 0.4, 0.4], 8, 1.0, [3, 1]),  # 1.2 h ≥ 1 h closes the first shard
        # shard_size does not cap an hours-sized shard: 100 short recordings in one 1 h shard
        ([0.01] * 100, 8, 1.0, [100]),
        # a recording longer than shard_hours is a shard of its own
        ([0.2, 5.0, 0.2, 0.2], 8, 1.0, [2, 2]),
        ([5.0, 0.2], 8, 1.0, [1, 1]),
        ([], 8, 1.0, []),
    ],
)
def test_plan_shards(durations_h, shard_size, shard_hours, expected):
    ids = [f"r{i:03d}" for i in range(len(durations_h))]
    shards = plan_shards(ids, [d * H for d in durations_h], shard_size, shard_hours)
    assert [len(s) for s in shards] == expected
    assert [r for s in shards for r in s] == ids  # every kept recording once, in order


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan")])
def test_shard_hours_must_be_positive_and_finite(value):
    with pytest.raises(ConfigError, match=r"settings.shard_hours.*(finite|> 0)"):
        parse_pipeline({"name": "p", "settings": {"shard_hours": value}})


def test_shard_hours_default_is_none_and_accepts_int():
    assert parse_pipeline({"name": "p"}).settings.shard_hours is None
    assert parse_pipeline({"name": "p", "settings": {"shard_hours": 2}}).settings.shard_hours == 2


def test_prepare_sizes_shards_by_hours(tmp_path):
    """prepare() plans by shard_hours when set: 5 recordings of ~65 s in shards of ≥ 2 minutes of audio."""
    from curate.config import load_pipeline
    from curate.runners.driver import prepare
    from curate.testing import make_archive

    catalog = make_archive(tmp_path / "arch", n=5)
    pipe = load_pipeline("pipelines/seq.yaml", overrides=["settings.shard_hours=0.0333"])
    plan = prepare(pipe, catalog, tmp_path / "out")
    assert [len(s) for s in plan.shards] == [2, 2, 1]
