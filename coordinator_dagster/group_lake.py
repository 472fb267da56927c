"""Group leaderboards over the lake: which round scores a group ranking reads (density rounds, or
the pipeline's scores turned into rounds), the span of them a checkpoint ranks, and the entries of
a checkpoint paid by `TopKPerGroup`. The `group_leaderboard` and `checkpoints` assets and the audit
bundles of such checkpoints call these, so a bundle re-derives exactly what the checkpoint read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.scoring import group_ranking

# Density competitions (a contract with prediction profiles) write one normalised score per model
# per round here (Synth rules); other contracts' leaderboards by group are built from their scores.
DENSITY_TABLE = "density_round_scores"
# A round is read from its round time's hour; its score counts once resolved, up to this long later.
LONGEST_HORIZON = dt.timedelta(days=2)


def ranking_window(contract: CrunchContract) -> str:
    """The window that orders each group: the ranking key when it is a window, else the longest."""
    windows = contract.aggregation.windows
    key = contract.aggregation.ranking_key
    return key if key in windows else max(windows, key=windows.__getitem__)


def round_source(contract: CrunchContract) -> str:
    """Where the contract's round scores are: every lake has both tables, so the contract decides."""
    return DENSITY_TABLE if contract.prediction_profiles else "scores"


def read_round_scores(store: Any, contract: CrunchContract, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Round scores (model_id, subject, horizon_seconds, performed_at, score, …) of the rounds
    performed in [start − LONGEST_HORIZON, end)."""
    first = start - LONGEST_HORIZON
    if round_source(contract) == DENSITY_TABLE:
        return store.read_window(DENSITY_TABLE, first, end)
    horizons = {p.scope_key: p.resolve_horizon_seconds for p in contract.scheduled_predictions}
    return group_ranking.rounds_from_scores(store.read_window("scores", first, end), horizons)


def checkpoint_rounds(store: Any, contract: CrunchContract, end: dt.datetime) -> pl.DataFrame:
    """The round scores a checkpoint whose period ends at `end` ranks: its longest window's."""
    longest = max(contract.aggregation.windows.values())
    return read_round_scores(store, contract, end - dt.timedelta(hours=longest), end)


def group_entries(contract: CrunchContract, rounds: pl.DataFrame, models: pl.DataFrame, end: dt.datetime) -> list[dict[str, Any]]:
    """Entries in the published leaderboard shape, with the windows ending at the period's end."""
    windows = contract.aggregation.windows
    board = group_ranking.group_leaderboard(rounds, windows, ranking_window(contract), contract.aggregation.ranking_direction, as_of=end)
    return group_ranking.published_entries(board, list(windows), models)
