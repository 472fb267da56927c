"""`GET /reports/leaderboard`: the current ranking, as the `leaderboard` asset last built it.

Each row carries the project's fields (`windows`, `cruncher`, `ranking_value`) and the fields the
dashboard reads (`api.dashboard.shapes.leaderboard_row`): every window and contract metric at the
top level, `cruncher_name`, `status`, `score_metrics` and `score_ranking`. A metric is its mean
over the snapshots of the first window ending at the ranking's `as_of`.
"""

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api import sql
from api.dashboard import shapes
from api.dashboard.schemas import DashboardLeaderboardEntry
from api.deps import DbDep
from api.schemas import LeaderboardEntry

router = APIRouter(prefix="/reports/leaderboard", tags=["leaderboard"])

# Every other column of the leaderboard is an aggregation window. The windows are read from the
# data, not the contract, so the answer matches the leaderboard as it was built even while a
# changed contract has not rebuilt it yet.
_FIXED = frozenset(LeaderboardEntry.model_fields) - {"windows"}


@router.get("", response_model=list[DashboardLeaderboardEntry], summary="Models ranked by the contract's ranking key")
def get_leaderboard(
    request: Request,
    db: DbDep,
    include_ensembles: Annotated[bool, Query(description="also list the virtual ensemble models (unranked)")] = False,
) -> list[dict]:
    contract = request.app.state.contract
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
    empty = dict.fromkeys(contract.metrics)
    return [
        shapes.leaderboard_row(row, windows, metrics.get(row["model_id"], empty), models.get(row["model_id"], {}), contract.aggregation.ranking_direction)
        for row in found
    ]
