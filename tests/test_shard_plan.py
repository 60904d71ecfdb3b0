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


@pytest.mark.parametrize(
    ("durations_h", "shard_size", "shard_hours", "workers", "expected"),
    [
        ([0.01] * 8, 8, None, 2, [4, 4]),  # a small catalog: one shard per worker, not one shard for all
        ([0.01] * 7, 8, None, 2, [4, 3]),
        ([0.01] * 3, 8, None, 8, [1, 1, 1]),  # more workers than recordings: one recording each
        ([0.01] * 20, 8, None, 2, [8, 8, 4]),  # big enough: shard_size as asked
        ([0.01] * 100, 8, 1.0, 2, [50, 50]),  # 1 h of audio on 2 workers: two half-hour shards
        ([0.5] * 8, 8, 1.0, 2, [2, 2, 2, 2]),  # 4 h: the hours asked for
        ([], 8, None, 4, []),
    ],
)
def test_a_small_catalog_is_planned_for_every_worker(durations_h, shard_size, shard_hours, workers, expected):
    ids = [f"r{i:03d}" for i in range(len(durations_h))]
    shards = plan_shards(ids, [d * H for d in durations_h], shard_size, shard_hours, workers)
    assert [len(s) for s in shards] == expected
    assert [r for s in shards for r in s] == ids


def test_the_plan_for_the_workers_is_made_once_and_kept_by_a_rerun(tmp_path):
    """8 recordings, shard_size 8, 2 workers: 2 shards, written in plan.json; a rerun (on 1 worker) resumes that
    plan instead of making another, so its finished shards stand."""
    from curate.config import load_pipeline
    from curate.runners.driver import prepare
    from curate.testing import make_archive

    catalog = make_archive(tmp_path / "arch", n=8)
    pipe = load_pipeline("pipelines/seq.yaml", overrides=["settings.shard_size=8"])
    first = prepare(pipe, catalog, tmp_path / "out", worker_count=lambda: 2)
    assert [len(s) for s in first.shards] == [4, 4]
    again = prepare(pipe, catalog, tmp_path / "out", worker_count=lambda: pytest.fail("the plan is not made again"))
    assert again.shards == first.shards


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
