"""`GET /reports/feeds`: every feed in the lake (source, subject, kind, granularity) with its
first and last record time and its record count."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import sql
from api.deps import DbDep
from api.schemas import FeedSummary

router = APIRouter(prefix="/reports/feeds", tags=["feeds"])

Name = Annotated[str | None, Query(max_length=100)]


@router.get("", response_model=list[FeedSummary], summary="Feeds in the lake with their coverage")
def list_feeds(db: DbDep, source: Name = None, subject: Name = None, kind: Name = None, granularity: Name = None) -> list[FeedSummary]:
    where = sql.Where().equals("source", source).equals("subject", subject).equals("kind", kind).equals("granularity", granularity)
    found = sql.rows(
        db,
        "SELECT source, subject, kind, granularity, min(ts_event) AS first_ts, max(ts_event) AS last_ts, count(*) AS record_count "
        f"FROM feed_records{where.sql} GROUP BY ALL ORDER BY source, subject, kind, granularity",
        where.params,
    )
    return [FeedSummary(**row) for row in found]
