"""`GET /reports/snapshots` (per-model summaries per hour, paginated) and
`GET /reports/ensemble/history` (the ensembles' leaderboard entries hour by hour)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api import sql
from api.deps import DbDep, PaginationDep, TimeRangeDep
from api.schemas import LeaderboardEntry, Page, Snapshot

router = APIRouter(prefix="/reports/snapshots", tags=["snapshots"])
ensemble_router = APIRouter(prefix="/reports/ensemble", tags=["models"])

_COLUMNS = ", ".join(f'"{name}"' for name in Snapshot.model_fields)
_FIXED = frozenset(LeaderboardEntry.model_fields) - {"windows"}


def _summary(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"unparsed": text}
    return value if isinstance(value, dict) else {"value": value}


@router.get("", response_model=Page[Snapshot], summary="Snapshots, newest period first")
def list_snapshots(
    db: DbDep,
    page: PaginationDep,
    period: TimeRangeDep,
    model_id: Annotated[str | None, Query(max_length=200, description="only this model")] = None,
) -> Page[Snapshot]:
    where = sql.Where().equals("model_id", model_id).time_range(db, "snapshots", "period_start", period)
    total, found = sql.page(db, _COLUMNS, "snapshots", where, "period_start DESC, model_id", page.limit, page.offset)
    items = [Snapshot(**{**row, "result_summary": _summary(row["result_summary"])}) for row in found]
    return Page[Snapshot](items=items, limit=page.limit, offset=page.offset, total=total)


@ensemble_router.get("/history", response_model=Page[LeaderboardEntry], summary="Ensemble leaderboard entries per hour, newest first")
def ensemble_history(
    db: DbDep,
    page: PaginationDep,
    period: TimeRangeDep,
    model_id: Annotated[str | None, Query(max_length=200, description="one ensemble, e.g. __ensemble_main__")] = None,
) -> Page[LeaderboardEntry]:
    where = sql.Where().add("coalesce(is_ensemble, false)").equals("model_id", model_id).time_range(db, "leaderboard_history", "as_of", period)
    total, found = sql.page(db, "*", "leaderboard_history", where, "as_of DESC, model_id", page.limit, page.offset)
    items = [
        LeaderboardEntry(
            **{name: row[name] for name in _FIXED},
            windows={name: value for name, value in row.items() if name not in _FIXED and name not in ("date", "hour")},
        )
        for row in found
    ]
    return Page[LeaderboardEntry](items=items, limit=page.limit, offset=page.offset, total=total)
