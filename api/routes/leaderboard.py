"""`GET /reports/leaderboard`: the current ranking, as the `leaderboard` asset last built it."""

from typing import Annotated

from fastapi import APIRouter, Query

from api import sql
from api.deps import DbDep
from api.schemas import LeaderboardEntry

router = APIRouter(prefix="/reports/leaderboard", tags=["leaderboard"])

# Every other column of the leaderboard is an aggregation window. The windows are read from the
# data, not the contract, so the answer matches the leaderboard as it was built even while a
# changed contract has not rebuilt it yet.
_FIXED = frozenset(LeaderboardEntry.model_fields) - {"windows"}


@router.get("", response_model=list[LeaderboardEntry], summary="Models ranked by the contract's ranking key")
def get_leaderboard(
    db: DbDep,
    include_ensembles: Annotated[bool, Query(description="also list the virtual ensemble models (unranked)")] = False,
) -> list[LeaderboardEntry]:
    where = "" if include_ensembles else " WHERE NOT coalesce(is_ensemble, false)"
    # The leaderboard's own order (coordinator_dagster.scoring.ranking): tied ranks by more scored
    # predictions, unranked real models before the ensembles.
    order = "rank NULLS LAST, coalesce(is_ensemble, false), prediction_count DESC NULLS LAST, model_id"
    found = sql.rows(db, f"SELECT * FROM leaderboard{where} ORDER BY {order}")
    return [
        LeaderboardEntry(
            **{name: row[name] for name in _FIXED},
            windows={name: value for name, value in row.items() if name not in _FIXED},
        )
        for row in found
    ]
