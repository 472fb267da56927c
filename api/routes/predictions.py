"""`GET /reports/predictions`: predictions with their derived status, filtered and paginated.

Always paginated (at most `MAX_LIMIT` rows a page) so that no call can make the server
materialize the whole table.
"""

from typing import Annotated

from fastapi import APIRouter, Query

from api import sql
from api.deps import DbDep, PaginationDep, TimeRangeDep
from api.schemas import Page, Prediction, PredictionStatus

router = APIRouter(prefix="/reports/predictions", tags=["predictions"])

_COLUMNS = ", ".join(f'"{name}"' for name in Prediction.model_fields)
# round_ts, scope_key and model_id identify a prediction; prediction_id keeps pages stable even
# if two rows ever shared them.
_ORDER = "round_ts DESC, scope_key, model_id, prediction_id"


@router.get("", response_model=Page[Prediction], summary="Predictions, newest round first")
def list_predictions(
    db: DbDep,
    page: PaginationDep,
    period: TimeRangeDep,
    model_id: Annotated[str | None, Query(description="only this model")] = None,
    subject: Annotated[str | None, Query(description="only this subject, e.g. BTC")] = None,
    scope_key: Annotated[str | None, Query(description="only this scheduled prediction")] = None,
    status: Annotated[PredictionStatus | None, Query(description="only this status")] = None,
) -> Page[Prediction]:
    where = (
        sql.Where()
        .equals("model_id", model_id)
        .equals("subject", subject)
        .equals("scope_key", scope_key)
        .equals("status", status.value if status else None)
        .time_range(db, "predictions", "round_ts", period)
    )
    # Two statements rather than one with a window count or a materialized CTE: both of those hold
    # every matching row in memory, and an unfiltered call over months of rounds must not.
    total = sql.scalar(db, f"SELECT count(*) FROM predictions{where.sql}", where.params)
    items = sql.rows(
        db,
        f"SELECT {_COLUMNS} FROM predictions{where.sql} ORDER BY {_ORDER} LIMIT ? OFFSET ?",
        [*where.params, page.limit, page.offset],
    )
    return Page[Prediction](items=[Prediction(**row) for row in items], limit=page.limit, offset=page.offset, total=total)
