"""`GET /reports/leaderboard`: the current ranking, as the `leaderboard` asset last built it.

Each row carries the project's fields (`windows`, `cruncher`, `ranking_value`) and the fields the
dashboard reads (`api.dashboard.shapes.leaderboard_row`): every window and contract metric at the
top level, `cruncher_name`, `status`, `score_metrics` and `score_ranking`. A metric is its mean
over the snapshots of the first window ending at the ranking's `as_of`. The answer is built once
per change of the tables it reads (`api.prebuilt`), not per request.
"""

import datetime as dt
from typing import Annotated

import duckdb
from fastapi import APIRouter, Query, Request, Response

from api import sql
from api.dashboard import shapes
from api.dashboard.schemas import DashboardLeaderboardEntry
from api.dashboard.trading_widgets import trading_figures
from api.fast_lane import fast
from api.prebuilt import Answer, answer_of, encoder, render
from api.schemas import LeaderboardEntry
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.scoring.trading.hourly import FIGURES

router = APIRouter(prefix="/reports/leaderboard", tags=["leaderboard"])

# Every other column of the leaderboard is an aggregation window. The windows are read from the
# data, not the contract, so the answer matches the leaderboard as it was built even while a
# changed contract has not rebuilt it yet.
_FIXED = frozenset(LeaderboardEntry.model_fields) - {"windows"}


def leaderboard_rows(db: duckdb.DuckDBPyConnection, contract: CrunchContract, include_ensembles: bool) -> list[dict]:
    where = "" if include_ensembles else " WHERE NOT coalesce(is_ensemble, false)"
    # The leaderboard's own order (coordinator_dagster.scoring.ranking): tied ranks by more scored
    # predictions, unranked real models before the ensembles.
    order = "rank NULLS LAST, coalesce(is_ensemble, false), prediction_count DESC NULLS LAST, model_id"
    found = sql.rows(db, f"SELECT * FROM leaderboard{where} ORDER BY {order}")
    if not found:
        return []
    windows = [name for name in found[0] if name not in _FIXED]
    models = {row["model_id"]: row for row in sql.rows(db, "SELECT model_id, name, cruncher, active FROM models")}
    as_of = max((row["as_of"] for row in found if row["as_of"] is not None), default=None)
    metrics = {}
    if as_of is not None and contract.metrics:
        since = as_of - dt.timedelta(hours=next(iter(contract.aggregation.windows.values())))
        snapshots = db.execute("SELECT model_id, result_summary FROM snapshots WHERE period_end > ? AND period_end <= ?", [since, as_of]).pl()
        metrics = {row.pop("model_id"): row for row in shapes.metric_means(snapshots, contract.metrics).iter_rows(named=True)}
    late = late_track_fields(db)
    empty = dict.fromkeys(contract.metrics)
    if contract.trading is not None and as_of is not None:
        # A trading row carries its newest snapshot's figures (net PnL, fees, drawdown, …).
        metrics, empty = trading_figures(db, as_of), dict.fromkeys(FIGURES)
    return [
        {
            **shapes.leaderboard_row(row, windows, metrics.get(row["model_id"], empty), models.get(row["model_id"], {}), contract.aggregation.ranking_direction),
            **late.get(row["model_id"], NO_LATE),
        }
        for row in found
    ]


NO_LATE = {"late_count": 0, "late_score_mean": None}


def late_track_fields(db: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """Per model, its late-track answers scored so far and their mean successful score: figures
    shown beside the ranking, read from `late_scores`, which nothing ranked or paid reads."""
    found = sql.rows(
        db, "SELECT model_id, count(*) AS late_count, avg(value) FILTER (WHERE success) AS late_score_mean FROM late_scores GROUP BY model_id"
    )
    return {row.pop("model_id"): {**row, "late_score_mean": shapes.finite(row["late_score_mean"])} for row in found}


_encode = encoder(list[DashboardLeaderboardEntry])


def _builder(include_ensembles: bool):
    return lambda db, contract: render(_encode(leaderboard_rows(db, contract, include_ensembles)))


# One answer per value of `include_ensembles`, each built only when asked for.
LEADERBOARD = {
    flag: Answer(f"leaderboard (ensembles {flag})", ("leaderboard", "models", "snapshots", "late_scores"), _builder(flag)) for flag in (True, False)
}


async def _leaderboard(state, include_ensembles: bool = False) -> bytes:
    return await answer_of(state, LEADERBOARD[include_ensembles])


@router.get("", response_model=list[DashboardLeaderboardEntry], summary="Models ranked by the contract's ranking key")
@fast(lambda state, _: _leaderboard(state))
async def get_leaderboard(
    request: Request,
    include_ensembles: Annotated[bool, Query(description="also list the virtual ensemble models (unranked)")] = False,
) -> Response:
    return Response(await _leaderboard(request.app.state, include_ensembles), media_type="application/json")
