"""The checkpoint's "ranking reproducible" check: the period's snapshots, as the lake holds them,
re-derived from the lake's predictions and scores, and the checkpoint's ranked entries re-derived
from those snapshots.

It catches a checkpoint built on stale snapshots (scores re-computed after their snapshots were
built, a snapshot file replaced by hand) before anyone approves it. A rule that ranks per-group
leaderboards (`TopKPerGroup`) does not rank the snapshots: for it the entries are re-derived from
the round scores the checkpoint read (`group_lake`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import polars as pl

from coordinator_dagster import group_lake
from coordinator_dagster.audit import derive
from coordinator_dagster.checks import RANKING_REPRODUCIBLE, CheckOutcome


def ranking_reproducible(
    lake: Any, contract: Any, start: dt.datetime, end: dt.datetime, snapshots: pl.DataFrame, entries: list[dict[str, Any]]
) -> CheckOutcome:
    """`snapshots` and `entries` are what the checkpoint was built from."""
    again = derive.derive_snapshots(
        contract,
        lake.read_window("predictions", start, end, column="round_ts"),
        lake.read_window("scores", start, end, column="round_ts"),
        lake.read_window("ensemble_predictions", start, end, column="round_ts"),
        start,
        end,
    )
    problem = derive.first_difference("snapshots", snapshots.sort(derive.SNAPSHOT_KEY), again, derive.SNAPSHOT_KEY)
    ranked = derive.ranks_snapshots(contract)
    if problem is None:
        models = lake.read("models")
        if ranked:
            rederived = derive.derive_entries(contract, again, models)
        else:
            rederived = derive.derive_group_entries(contract, group_lake.checkpoint_rounds(lake, contract, end), models, end)
        if json.dumps(rederived, sort_keys=True) != json.dumps(entries, sort_keys=True):
            stored = [(e.get("model_id"), e.get("rank")) for e in entries]
            problem = f"ranking: stored {stored}, re-derived {[(e.get('model_id'), e.get('rank')) for e in rederived]}"
    return CheckOutcome(
        RANKING_REPRODUCIBLE,
        problem is None,
        "the period's snapshots re-derive from its predictions and scores"
        + (", and the ranking from those snapshots" if ranked else ", and the group ranking from the lake's round scores"),
        {"snapshots_rederived": again.height, "first_difference": problem or "none"},
    )
