"""The dashboard's schema and chart routes: `/reports/schema` (+ `/leaderboard-columns`,
`/metrics-widgets`), `/reports/models/params`, `/metrics`, `/summary`, `/reports/predictions`
(a capped, streamed JSON array) and `/reports/feeds/tail`.

Chart routes take the dashboard's `projectIds` (comma-separated model ids; none = every model),
`start` and `end`, and answer JSON arrays of flat rows with `model_id` and `performed_at` in the
chart's time form (`api.dashboard.shapes.chart_time`). The project's own paginated predictions
and per-scope contract parameters are at `/v1/reports/predictions` and `/v1/reports/models/params`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

import duckdb
import polars as pl
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from api import sql
from api.dashboard import shapes
from api.dashboard.prediction_chart import LazyCursor, chart_texts
from api.dashboard.report_schema import report_schema
from api.dashboard.trading_widgets import trading_report_schema
from api.dashboard.schemas import ChartPrediction, FeedRecord, MetricsRow, ParamsRow, SummaryRow
from api.deps import DbDep, TimeRange, TimeRangeDep
from api.fast_lane import fast
from api.prebuilt import Answer, answer_of, render
from coordinator_dagster.lake.layout import scan_window_folders

schema_router = APIRouter(prefix="/reports/schema", tags=["dashboard"])
models_router = APIRouter(prefix="/reports/models", tags=["dashboard"])
predictions_router = APIRouter(prefix="/reports/predictions", tags=["dashboard"])
feeds_router = APIRouter(prefix="/reports/feeds", tags=["feeds"])

# The predictions chart answers at most this many rows per request; the rest are a `Link: next`.
PREDICTIONS_CAP = 10_000
BATCH = 2_000
FEED_VALUES = ("open", "high", "low", "close", "volume", "price")


def project_ids(
    ids: Annotated[
        list[str] | None, Query(alias="projectIds", description="model ids, comma-separated or repeated; none = every model")
    ] = None,
) -> list[str] | None:
    found = [part.strip() for item in ids or [] for part in item.split(",") if part.strip()]
    return found or None


ProjectIdsDep = Annotated[list[str] | None, Depends(project_ids)]


def _where(ids: list[str] | None, period: TimeRange, column: str, include_ensembles: bool = True) -> sql.Where:
    where = sql.Where()
    if ids is not None:
        where.add(f"model_id IN ({', '.join('?' for _ in ids)})", *ids)
    if not include_ensembles:
        where.add("model_id NOT LIKE '\\_\\_ensemble\\_%' ESCAPE '\\'")
    if period.start is not None:
        where.add(f"{column} >= ?", period.start)
    if period.end is not None:
        where.add(f"{column} < ?", period.end)
    return where


# ---- schema ----------------------------------------------------------------------------------


def _schema_answers(_: duckdb.DuckDBPyConnection, contract: Any) -> dict[str, bytes]:
    found = trading_report_schema(contract) if contract.trading is not None else report_schema(contract)
    return {"": render(found), "columns": render(found["leaderboard_columns"]), "widgets": render(found["metrics_widgets"])}


# From the contract alone, which is fixed for the app's life: built once.
SCHEMA = Answer("schema", (), _schema_answers)


async def _schema_part(state: Any, part: str) -> bytes:
    return (await answer_of(state, SCHEMA))[part]


async def _schema(request: Request, part: str) -> Response:
    return Response(await _schema_part(request.app.state, part), media_type="application/json")


@schema_router.get("", response_model=dict[str, Any], summary="The dashboard's leaderboard columns and metric widgets, from the contract")
@fast(lambda state, _: _schema_part(state, ""))
async def get_schema(request: Request) -> Response:
    return await _schema(request, "")


@schema_router.get("/leaderboard-columns", response_model=list[dict[str, Any]], summary="The dashboard's leaderboard columns")
@fast(lambda state, _: _schema_part(state, "columns"))
async def get_columns(request: Request) -> Response:
    return await _schema(request, "columns")


@schema_router.get("/metrics-widgets", response_model=list[dict[str, Any]], summary="The dashboard's metric widgets")
@fast(lambda state, _: _schema_part(state, "widgets"))
async def get_widgets(request: Request) -> Response:
    return await _schema(request, "widgets")


# ---- model charts ----------------------------------------------------------------------------


def _scopes(request: Request) -> dict[str, dict[str, Any]]:
    return {
        p.scope_key: {"subject": p.scope.subject, "step_seconds": p.scope.step_seconds, "horizon_seconds": p.scope.horizon_seconds}
        for p in request.app.state.contract.scheduled_predictions
    }


@models_router.get("/params", response_model=list[ParamsRow], summary="Per model × scope, each window's mean score hour by hour")
def models_params(
    request: Request, db: DbDep, ids: ProjectIdsDep, period: TimeRangeDep, include_ensembles: bool = False
) -> list[dict[str, Any]]:
    contract = request.app.state.contract
    agg = contract.aggregation
    where = _where(ids, period, "round_ts", include_ensembles)
    scores = db.execute(f"SELECT model_id, scope_key, subject, round_ts, value, success FROM scores{where.sql}", where.params).pl()
    rolled = shapes.rolling_windows(scores.with_columns(pl.col("success").fill_null(False)), agg.windows, ["model_id", "scope_key", "subject"])
    scopes = _scopes(request)
    rows = []
    for row in rolled.iter_rows(named=True):
        scope = scopes.get(row["scope_key"], {"subject": row["subject"]})
        metrics = {name: shapes.finite(row[name]) for name in agg.windows}
        rows.append(
            {
                "model_id": row["model_id"], "scope_key": row["scope_key"], "scope": scope, "subject": row["subject"],
                "asset": row["subject"], "horizon": shapes.horizon_label(scope["horizon_seconds"]) if "horizon_seconds" in scope else "",
                "param": row["scope_key"], "performed_at": shapes.chart_time(row["hour"]), **metrics, "score_metrics": metrics,
                "score_ranking": shapes.ranking(agg.ranking_key, metrics.get(agg.ranking_key), agg.ranking_direction),
            }
        )
    return rows


def _snapshots(db: duckdb.DuckDBPyConnection, ids: list[str] | None, period: TimeRange, include_ensembles: bool) -> list[dict[str, Any]]:
    where = _where(ids, period, "period_end", include_ensembles)
    return sql.rows(
        db, f"SELECT model_id, period_end, prediction_count, value, result_summary FROM snapshots{where.sql} ORDER BY period_end, model_id", where.params
    )


@models_router.get("/metrics", response_model=list[MetricsRow], summary="Every snapshot's metrics per model, oldest first")
def models_metrics(db: DbDep, ids: ProjectIdsDep, period: TimeRangeDep, include_ensembles: bool = False) -> list[dict[str, Any]]:
    return [
        {
            "model_id": s["model_id"], "performed_at": shapes.chart_time(s["period_end"]), "prediction_count": s["prediction_count"],
            **shapes.numeric_fields(s["result_summary"]), "value": shapes.finite(s["value"]),
        }
        for s in _snapshots(db, ids, period, include_ensembles)
    ]


@models_router.get("/summary", response_model=list[SummaryRow], summary="Each model's newest snapshot metrics in the range")
def models_summary(db: DbDep, ids: ProjectIdsDep, period: TimeRangeDep, include_ensembles: bool = False) -> list[dict[str, Any]]:
    newest = {s["model_id"]: s for s in _snapshots(db, ids, period, include_ensembles)}  # oldest first: the last wins
    return [
        {"model_id": m, "performed_at": shapes.chart_time(s["period_end"]), **shapes.numeric_fields(s["result_summary"]), "value": shapes.finite(s["value"])}
        for m, s in sorted(newest.items())
    ]


# ---- predictions -----------------------------------------------------------------------------


def _prediction_row(row: tuple, scopes: dict[str, tuple[dict[str, Any], str | None]]) -> dict[str, Any]:
    """A `ChartPrediction` as a plain dict (validating ten thousand models per answer costs more
    than reading them; the contract test checks the shape). Times arrive as chart times."""
    model_id, prediction_id, scope_key, subject, performed_at, resolvable_at, status, reason, score_value, success = row
    scope, horizon = scopes.get(scope_key) or ({"subject": subject}, None)
    if reason is None and not success:
        reason = "not scored yet" if status == "PENDING" else f"prediction {status.lower()}"
    return {
        "model_id": model_id, "prediction_id": prediction_id, "scope_key": scope_key, "scope": scope, "subject": subject,
        "asset": subject, "horizon": horizon, "param": scope_key, "status": status, "performed_at": performed_at,
        "score_value": shapes.finite(score_value), "score_success": bool(success), "score_failed": not success,
        "score_failed_reason": None if success else reason, "scored_at": resolvable_at if success is not None else None,
    }


@predictions_router.get(
    "",
    response_model=list[ChartPrediction],
    summary=f"Predictions with their scores for the chart, oldest first, at most {PREDICTIONS_CAP:,} a request",
    description=(
        f"A JSON array, ordered by round time. At most `limit` (≤ {PREDICTIONS_CAP:,}) rows are sent, read from the "
        "oldest hours of the range onwards (never the whole range): the `X-Result-Limit` header states the cap, "
        "`X-Result-Truncated: true` says more rows match, and a `Link: <…>; rel=\"next\"` header gives the next page "
        "(same query, `offset` moved on). The paginated form with an exact total is `GET /v1/reports/predictions`."
    ),
)
def chart_predictions(
    request: Request,
    ids: ProjectIdsDep,
    period: TimeRangeDep,
    limit: Annotated[int, Query(ge=1, le=PREDICTIONS_CAP)] = PREDICTIONS_CAP,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> StreamingResponse:
    scopes = {key: (scope, shapes.horizon_label(scope["horizon_seconds"])) for key, scope in _scopes(request).items()}

    def render(row: tuple) -> str:
        return json.dumps(_prediction_row(row, scopes), allow_nan=False, separators=(",", ":"))

    # Rows are rendered once per hour held (`api.dashboard.chart_hours`), per set of scopes.
    key = json.dumps(scopes, sort_keys=True, default=str)
    with LazyCursor(request.app.state.reader.cursor) as con:
        texts, more = chart_texts(con, request.app.state.lake, ids, period, limit, offset, key, render)
    headers = {"X-Result-Limit": str(limit), "X-Result-Truncated": "true" if more else "false"}
    if more:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"] + [("offset", str(offset + limit))]
        headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'

    async def body() -> AsyncIterator[bytes]:
        # Joined a batch at a time: the answer's bytes never sit in memory whole. The brackets
        # ride with the first and last batch, and the generator is async (joining a batch is
        # quick): each chunk is one ASGI message, with no hop to the thread pool to make it.
        last = max(len(texts) - BATCH, 0)
        for start in range(0, max(len(texts), 1), BATCH):
            yield (("[" if start == 0 else ",") + ",".join(texts[start : start + BATCH]) + ("]" if start >= last else "")).encode()

    return StreamingResponse(body(), media_type="application/json", headers=headers)


# ---- feeds -----------------------------------------------------------------------------------

Name = Annotated[str | None, Query(max_length=100)]


@feeds_router.get("/tail", response_model=list[FeedRecord], summary="A feed's newest records, newest first")
def feed_tail(
    request: Request,
    db: DbDep,
    source: Name = None,
    subject: Name = None,
    kind: Name = None,
    granularity: Name = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[FeedRecord]:
    where = sql.Where().equals("source", source).equals("subject", subject).equals("kind", kind).equals("granularity", granularity)
    found = sql.rows(
        db,
        f"SELECT source, subject, kind, granularity, ts_event, {', '.join(FEED_VALUES)} FROM feed_records{where.sql} "
        "ORDER BY ts_event DESC, source, subject, kind, granularity LIMIT ?",
        [*where.params, limit],
    )
    hours = [r["ts_event"] for r in found]
    written = hour_written_at(request, min(hours), max(hours)) if hours else {}
    return [
        FeedRecord(
            source=r["source"], subject=r["subject"], kind=r["kind"], granularity=r["granularity"], ts_event=r["ts_event"],
            ts_ingested=written.get(int(r["ts_event"].timestamp()) // 3600),
            values={k: shapes.finite(r[k]) for k in FEED_VALUES if r[k] is not None}, meta={},
        )
        for r in found
    ]


def hour_written_at(request: Request, first: dt.datetime, last: dt.datetime) -> dict[int, dt.datetime]:
    """Hour number (Unix hours) → when that feed hour's partition file was last written (its
    mtime, UTC), for the hours from `first` to `last`."""
    lake = request.app.state.lake
    out = {}
    for folder in scan_window_folders(lake.table_dir("feed_records"), first, last + dt.timedelta(hours=1)):
        try:
            out[int(folder.start.timestamp()) // 3600] = dt.datetime.fromtimestamp(os.stat(folder.path).st_mtime, dt.timezone.utc)
        except FileNotFoundError:
            continue
    return out
