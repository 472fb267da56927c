"""`GET /reports/predictions`: predictions with their derived status, filtered and paginated.

Always paginated (at most `MAX_LIMIT` rows a page) so that no call can make the server
materialize the whole table. Pages are read from the newest hour partitions first and `total`
is an exact count assembled from cached per-partition counts (see `api.prediction_pages`), so
the first page costs a few files however large the lake grows.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import DbDep, PaginationDep, TimeRangeDep
from api.prediction_pages import Filters, PredictionPager
from api.schemas import Page, Prediction, PredictionStatus

# The paginated form; `GET /reports/predictions` is the dashboard's capped array (api.routes.dashboard_charts).
router = APIRouter(prefix="/v1/reports/predictions", tags=["predictions"])


def pager(request: Request) -> PredictionPager:
    state = request.app.state
    if getattr(state, "prediction_pager", None) is None:
        state.prediction_pager = PredictionPager(state.lake)
    return state.prediction_pager


@router.get("", response_model=Page[Prediction], summary="Predictions, newest round first")
def list_predictions(
    request: Request,
    db: DbDep,
    page: PaginationDep,
    period: TimeRangeDep,
    model_id: Annotated[str | None, Query(description="only this model")] = None,
    subject: Annotated[str | None, Query(description="only this subject, e.g. BTC")] = None,
    scope_key: Annotated[str | None, Query(description="only this scheduled prediction")] = None,
    status: Annotated[PredictionStatus | None, Query(description="only this status")] = None,
) -> Page[Prediction]:
    filters = Filters(model_id=model_id, subject=subject, scope_key=scope_key, status=status.value if status else None, period=period)
    items, total = pager(request).page(db, filters, page)
    return Page[Prediction](items=[Prediction(**row) for row in items], limit=page.limit, offset=page.offset, total=total)
