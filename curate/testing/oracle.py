"""The in-memory filter oracle: the metadata filters, audio passes and aggregates of a pipeline run over a
whole recordings table at once, one decision per recording. The run streams them through files
(:func:`curate.runners.streaming.filter_run`); tests check that it decides exactly what this oracle decides."""

from __future__ import annotations

import pandas as pd

from curate.errors import RunDirError
from curate.rundir import RunDir
from curate.runners.streaming import run_audio_pass
from curate.schema import Decision, Failure
from curate.stages.base import Aggregate, AudioPass, Filter


def run_filters(df: pd.DataFrame, stages: list, run: RunDir | None = None) -> tuple[list[Decision], list[Failure]]:
    """Run Filter/AudioPass/Aggregate stages in order over the recordings table: one decision per recording,
    plus failure rows of audio passes. ``run``: the run directory (needed by audio passes and aggregates that
    read their results)."""
    decisions: list[Decision] = []
    failures: list[Failure] = []
    alive = df
    for st in stages:
        if alive.empty:
            break
        if isinstance(st, AudioPass):
            if run is None:
                raise RunDirError(f"stage '{st.stage_name}' stores results in a run directory; none was given")
            dropped, failed = run_audio_pass(st, alive, run)
            decisions += dropped
            failures += failed
            alive = alive[~alive["recording_id"].isin({d.recording_id for d in dropped})]
        elif isinstance(st, Filter):
            reasons = st.reasons(alive)
            dropped = reasons.notna()
            for rid, reason in zip(alive.loc[dropped, "recording_id"], reasons[dropped], strict=True):
                decisions.append(Decision(rid, False, st.stage_name, str(reason)))
            alive = alive[~dropped]
        elif isinstance(st, Aggregate):
            drop = st.drop(alive)
            for row in drop.to_dict("records"):
                decisions.append(
                    Decision(row["recording_id"], False, st.stage_name, row["reason"], row.get("duplicate_of"))
                )
            alive = alive[~alive["recording_id"].isin(set(drop["recording_id"]))]
    decisions += [Decision(rid, True, "kept") for rid in alive["recording_id"]]
    return decisions, failures


def apply_filters(df: pd.DataFrame, stages: list) -> list[Decision]:
    """Run metadata Filter/Aggregate stages in order over the recordings table; one decision per recording."""
    return run_filters(df, stages)[0]


__all__ = ["apply_filters", "run_filters"]
