"""`GET /reports/feeds`: every feed in the lake (source, subject, kind, granularity) with its
first and last record time and its record count, plus the fields the dashboard's feed page reads
(`oldest_ts`, `newest_ts`, and the watermark: the newest record and when its hour was written)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api import sql
from api.deps import DbDep
from api.dashboard.schemas import FeedStatus
from api.routes.dashboard_charts import hour_written_at

router = APIRouter(prefix="/reports/feeds", tags=["feeds"])

Name = Annotated[str | None, Query(max_length=100)]


@router.get("", response_model=list[FeedStatus], summary="Feeds in the lake with their coverage")
def list_feeds(request: Request, db: DbDep, source: Name = None, subject: Name = None, kind: Name = None, granularity: Name = None) -> list[FeedStatus]:
    where = sql.Where().equals("source", source).equals("subject", subject).equals("kind", kind).equals("granularity", granularity)
    found = sql.rows(
        db,
        "SELECT source, subject, kind, granularity, min(ts_event) AS first_ts, max(ts_event) AS last_ts, count(*) AS record_count "
        f"FROM feed_records{where.sql} GROUP BY ALL ORDER BY source, subject, kind, granularity",
        where.params,
    )
    last = [row["last_ts"] for row in found]
    written = hour_written_at(request, min(last), max(last)) if last else {}
    return [
        FeedStatus(
            **row,
            oldest_ts=row["first_ts"],
            newest_ts=row["last_ts"],
            watermark_ts=row["last_ts"],
            watermark_updated_at=written.get(int(row["last_ts"].timestamp()) // 3600),
        )
        for row in found
    ]
