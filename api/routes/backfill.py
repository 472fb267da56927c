"""`/reports/backfill`: feed backfills through Dagster's GraphQL API (admin tier).

A backfill here is a Dagster asset backfill of `feed_records` over hour partitions, launched on
the webserver at `DAGSTER_GRAPHQL_URL`; Dagster's daemon runs it (one single run per range, the
asset's backfill policy). While one is running another is refused with 409, so two cannot
refetch the same hours. The launch is serialized by a lake lock, so the check and the launch are
one step even with several API workers.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import Field

from api import sql
from api.auth import AdminCaller
from api.dagster_client import RUNNING, DagsterError, DagsterGraphQL
from api.deps import DbDep, LakeDep, NoExtraQuery
from api.schemas import ApiModel, StrictBody
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT

router = APIRouter(prefix="/reports/backfill", tags=["backfill"])

MAX_HOURS = 31 * 24
_ERRORS = {401: {"description": "admin key missing or wrong"}, 502: {"description": "Dagster's GraphQL API failed"}}


class BackfillRequest(StrictBody):
    start: dt.datetime = Field(description="first hour to refetch (UTC when no offset), on the hour")
    end: dt.datetime = Field(description="hour after the last one, on the hour")


class BackfillFeed(ApiModel):
    subject: str
    scope_keys: list[str]
    first_ts: dt.datetime | None
    last_ts: dt.datetime | None
    record_count: int


class BackfillJob(ApiModel):
    backfill_id: str
    status: str
    partition_count: int | None
    first_partition: str | None
    last_partition: str | None
    created_at: dt.datetime | None
    ended_at: dt.datetime | None
    title: str | None
    run_status_counts: dict[str, int] | None = None


def _client(request: Request) -> DagsterGraphQL:
    state = request.app.state
    if getattr(state, "dagster", None) is None:
        state.dagster = DagsterGraphQL(state.settings.dagster_graphql_url)
    return state.dagster


def _job(raw: dict[str, Any]) -> BackfillJob:
    names = raw.get("partitionNames") or []
    stamp = lambda v: dt.datetime.fromtimestamp(v, dt.timezone.utc) if v else None  # noqa: E731
    counts = raw.get("partitionStatusCounts")
    return BackfillJob(
        backfill_id=raw["id"],
        status=raw["status"],
        partition_count=raw.get("numPartitions"),
        first_partition=min(names) if names else None,
        last_partition=max(names) if names else None,
        created_at=stamp(raw.get("timestamp")),
        ended_at=stamp(raw.get("endTimestamp")),
        title=raw.get("title"),
        run_status_counts={c["runStatus"]: c["count"] for c in counts} if counts is not None else None,
    )


def _is_feed_backfill(raw: dict[str, Any]) -> bool:
    return any(a.get("path") == ["feed_records"] for a in raw.get("assetSelection") or [])


def _dagster(exc: DagsterError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=str(exc))


@router.get("/feeds", response_model=list[BackfillFeed], summary="Feeds a backfill can refetch, with their coverage", responses=_ERRORS)
def backfill_feeds(request: Request, db: DbDep, _caller: AdminCaller) -> list[BackfillFeed]:
    contract = request.app.state.contract
    coverage = {
        row["subject"]: row
        for row in sql.rows(db, "SELECT subject, min(ts_event) AS first_ts, max(ts_event) AS last_ts, count(*) AS record_count FROM feed_records GROUP BY subject")
    }
    answer = []
    for subject in contract.subjects:
        row = coverage.get(subject, {})
        answer.append(
            BackfillFeed(
                subject=subject,
                scope_keys=[p.scope_key for p in contract.scheduled_predictions if p.scope.subject == subject and p.active],
                first_ts=row.get("first_ts"),
                last_ts=row.get("last_ts"),
                record_count=row.get("record_count", 0),
            )
        )
    return answer


@router.post(
    "",
    response_model=BackfillJob,
    status_code=202,
    summary="Refetch feed_records over [start, end) through a Dagster backfill",
    responses={**_ERRORS, 409: {"description": "a feed backfill is already running"}},
)
def start_backfill(request: Request, lake: LakeDep, _caller: AdminCaller, _: NoExtraQuery, body: BackfillRequest) -> BackfillJob:
    start, end = (t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc) for t in (body.start, body.end))
    problems = []
    for name, value in (("start", start), ("end", end)):
        if value.minute or value.second or value.microsecond:
            problems.append({"type": "value_error", "loc": ["body", name], "msg": f"{name} must be on the hour", "input": value.isoformat()})
    if not problems and end <= start:
        problems.append({"type": "value_error", "loc": ["body", "end"], "msg": "end must be after start", "input": end.isoformat()})
    hours = int((end - start).total_seconds() // 3600) if not problems else 0
    if not problems and hours > MAX_HOURS:
        problems.append({"type": "value_error", "loc": ["body", "end"], "msg": f"at most {MAX_HOURS} hours per backfill, got {hours}", "input": end.isoformat()})
    if problems:
        raise HTTPException(status_code=422, detail=problems)
    names = [(start + dt.timedelta(hours=h)).strftime(WINDOW_KEY_FORMAT) for h in range(hours)]
    client = _client(request)
    with lake.partition_lock("backfill_api"):
        try:
            running = [b for status in RUNNING for b in client.backfills(limit=50, status=status) if _is_feed_backfill(b)]
            if running:
                raise HTTPException(status_code=409, detail=f"feed backfill {running[0]['id']} is {running[0]['status']}; wait for it or cancel it in Dagster")
            backfill_id = client.launch_feed_backfill(names, title=f"api: feed_records {names[0]} .. {names[-1]}")
            return _job(client.backfill(backfill_id))
        except DagsterError as exc:
            raise _dagster(exc) from None


@router.get("/jobs", response_model=list[BackfillJob], summary="Feed backfills, newest first", responses=_ERRORS)
def list_jobs(request: Request, _caller: AdminCaller, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[BackfillJob]:
    try:
        return [_job(b) for b in _client(request).backfills(limit=limit) if _is_feed_backfill(b)]
    except DagsterError as exc:
        raise _dagster(exc) from None


@router.get("/jobs/{backfill_id}", response_model=BackfillJob, summary="One backfill with its runs' statuses", responses={**_ERRORS, 404: {"description": "no such backfill"}})
def get_job(request: Request, _caller: AdminCaller, backfill_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]) -> BackfillJob:
    try:
        return _job(_client(request).backfill(backfill_id))
    except DagsterError as exc:
        raise _dagster(exc) from None
