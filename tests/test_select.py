"""Selection: filters, caps, splits; deterministic and reproducible from what it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curate.errors import ConfigError
from curate.export.select import (
    Selection,
    Split,
    apply_selection,
    load_selection,
    parse_selection,
    select,
    write_selection,
)

REPO = Path(__file__).resolve().parent.parent


def frame(n_rec: int = 6, per_rec: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_rec):
        t = 0.0
        for k in range(per_rec):
            d = float(rng.uniform(0.5, 32))
            rows.append(
                {
                    "segment_id": f"r{r}_{k:04d}",
                    "recording_id": f"r{r}",
                    "start_s": t,
                    "end_s": t + d,
                    "duration_s": d,
                    "speaker": "AB"[k % 2] if r % 3 else None,
                    "no_speech_prob": float(rng.uniform()),
                    "language": "nl" if r != 5 else "en",
                    "genre": ["news", "sport", "commercial"][r % 3],
                    "title": f"show{r % 2}",
                }
            )
            t += d
    return pd.DataFrame(rows)


def ids(df: pd.DataFrame, split: str | None = None) -> list[str]:
    return sorted(df["segment_id"] if split is None else df.loc[df["split"] == split, "segment_id"])


def test_filters_duration_predicates_genre_language():
    sel = parse_selection(
        {
            "min_duration_s": 1,
            "max_duration_s": 30,
            "where": ["no_speech_prob < 0.5"],
            "exclude_genres": ["commercial"],
            "languages": ["nl"],
        }
    )
    out, stats = apply_selection(frame(), sel)
    assert len(out) > 0
    assert out["duration_s"].between(1, 30).all() and (out["no_speech_prob"] < 0.5).all()
    assert not (out["genre"] == "commercial").any() and (out["language"] == "nl").all()
    expected = frame().query(
        "1 <= duration_s <= 30 and no_speech_prob < 0.5 and genre != 'commercial' and language == 'nl'"
    )
    assert ids(out) == ids(expected)
    assert [s["step"] for s in stats["steps"]][:2] == ["input", "duration"]


@pytest.mark.parametrize(
    "pred, query",
    [
        ({"column": "speaker", "op": "in", "value": ["A"]}, "speaker == 'A'"),
        ("speaker is null", "speaker != speaker"),
        ("genre != news", "genre != 'news'"),
        ("duration_s >= 10.5", "duration_s >= 10.5"),
    ],
)
def test_predicate_forms(pred, query):
    out, _ = apply_selection(frame(), parse_selection({"where": [pred]}))
    assert ids(out) == ids(frame().query(query))


def test_caps_hold_and_sampling_is_deterministic_and_order_independent():
    spec = {"seed": 7, "max_hours_per_speaker": 0.1, "max_hours_per_programme": 0.3, "max_hours": 0.5}
    a, _ = apply_selection(frame(), parse_selection(spec))
    b, _ = apply_selection(frame().sample(frac=1, random_state=1), parse_selection(spec))
    assert ids(a) == ids(b)
    assert a["duration_s"].sum() <= 0.5 * 3600 + 1e-6
    assert a["duration_s"].sum() > 0.4 * 3600  # the cap is filled, not merely respected
    spk = a["recording_id"] + "/" + a["speaker"].fillna("?")
    assert a.groupby(spk)["duration_s"].sum().max() <= 0.1 * 3600 + 1e-6
    assert a.groupby("title")["duration_s"].sum().max() <= 0.3 * 3600 + 1e-6
    c, _ = apply_selection(frame(), parse_selection({**spec, "seed": 8}))
    assert ids(c) != ids(a)  # the seed matters


def test_splits():
    out, stats = apply_selection(frame(), parse_selection({"split": {"method": "random", "valid_pct": 10}, "seed": 1}))
    share = (out["split"] == "valid").mean()
    assert 0.04 < share < 0.18 and stats["valid"]["segments"] == (out["split"] == "valid").sum()
    again, _ = apply_selection(frame(), parse_selection({"split": {"method": "random", "valid_pct": 10}, "seed": 1}))
    assert ids(again, "valid") == ids(out, "valid")
    med, _ = apply_selection(frame(), parse_selection({"split": {"method": "median_per_recording"}}))
    valid = med[med["split"] == "valid"]
    assert sorted(valid["recording_id"]) == [f"r{r}" for r in range(6)]
    full = frame()
    for rid, dur in zip(valid["recording_id"], valid["duration_s"], strict=True):
        d = np.sort(full.loc[full["recording_id"] == rid, "duration_s"].to_numpy())
        assert dur == d[(len(d) - 1) // 2]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"split": {"method": "kfold"}}, "split.method must be one of"),
        ({"where": ["speaker ~ A"]}, "cannot parse"),
        ({"where": [{"column": "x", "op": "in", "value": 3}]}, "needs a list"),
        ({"max_hours": -1}, "max_hours must be >= 0"),
        ({"max_hourz": 3}, "unknown parameter"),
    ],
)
def test_bad_specs_are_clear(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_selection(raw)


def test_unknown_column_names_the_columns():
    with pytest.raises(ConfigError, match="unknown column 'snr'"):
        apply_selection(frame(), parse_selection({"where": ["snr > 3"]}))


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "selection").glob("*.yaml")), ids=lambda p: p.name)
def test_every_selection_config_loads(path):
    sel = load_selection(path)
    assert sel.name


def test_overrides_and_written_selection_round_trip(tmp_path):
    sel = load_selection(REPO / "configs" / "selection" / "clean-10h.yaml", ["max_hours=2", "split.valid_pct=5"])
    assert sel.max_hours == 2 and sel.split.valid_pct == 5 and sel.min_duration_s == 3.0
    write_selection(tmp_path, sel, {"train": {}})
    assert load_selection(tmp_path / "selection.yaml") == sel
    with pytest.raises(ConfigError, match="not found"):
        load_selection(tmp_path / "missing.yaml")


def test_select_joins_recordings(tmp_path):
    from curate.testing.export import LABELLED, make_labelled_run

    run = make_labelled_run(tmp_path)
    df, stats = select(run, LABELLED, Selection(genres=["news", "sport"], split=Split()))
    assert set(df["genre"]) == {"news", "sport"} and set(df["recording_id"]) == {"rec000", "rec001"}
    assert stats["train"]["segments"] == len(df) and stats["variant"] == LABELLED


def test_select_on_quality_columns():
    """The schema-v2 quality columns are selectable; a segment whose column is null never passes."""
    df = frame(n_rec=2, per_rec=4)
    df["music_ratio"] = [0.0, 0.01, 0.5, None, 0.02, 0.03, 0.0, 0.9]
    df["speaker_change"] = [False, False, False, False, True, False, False, False]
    sel = parse_selection({"where": ["music_ratio <= 0.02", "speaker_change == False"]})
    out, _ = apply_selection(df, sel)
    assert sorted(out["music_ratio"].tolist()) == [0.0, 0.0, 0.01]
    no_music = load_selection(REPO / "configs" / "selection" / "no-music.yaml")
    assert no_music.where[:2] == ["music_ratio <= 0.02", "vocal_music_ratio <= 0.005"]
