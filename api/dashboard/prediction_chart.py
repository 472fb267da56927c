"""The rows of the dashboard's predictions chart, read hour partition by hour partition.

The chart asks for every prediction of some models over days (`GET /reports/predictions`). Its
rows come oldest first, so they are read from the oldest hour partitions onwards, a few hours at
a time (the span doubling while rows are scarce), and reading stops once the page is full: at
most `offset + limit + 1` rows are ever requested (one more than the page, to know whether
another page exists), and only the hours that hold them are opened (or even looked at with a
`stat`), never the whole range; only the columns the chart shows are read.
A query skips whole hours for an `offset` by counting their matching rows first.

The status and reason rules are the lake's `predictions` view's
(`coordinator_dagster.lake.views`), applied to explicit file lists instead of the view's globs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from api.deps import TimeRange
from api import sql
from coordinator_dagster.lake.layout import WindowFolder, scan_window_folders
from coordinator_dagster.lake.reader import fetch_with_retry
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.lake.views import PREDICTION_FAILED_REASON, PREDICTION_STATUS, SCORE_JOIN

# Times come out of DuckDB already in the chart's form (api.dashboard.shapes.chart_time): UTC
# without an offset, to the second; formatting ten thousand datetimes in Python costs more.
CHART_TIME = "strftime({} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S')"
COLUMNS = (
    f"p.model_id, p.prediction_id, p.scope_key, p.subject, {CHART_TIME.format('p.round_ts')} AS performed_at, "
    f"{CHART_TIME.format('p.resolvable_at')} AS resolvable_at, "
    f"{PREDICTION_STATUS} AS status, {PREDICTION_FAILED_REASON} AS failed_reason, s.value AS score_value, s.success AS score_success"
)
ORDER = "p.round_ts, p.model_id, p.scope_key, p.prediction_id"
FIRST_SPAN = 6  # hours read by the first query; each further query reads twice as many


@dataclass(frozen=True)
class Hour:
    predictions: str
    scores: str | None


def _files(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def hours(lake: Lake, period: TimeRange) -> list[WindowFolder]:
    """The predictions hour folders overlapping `period`, oldest first (one folder listing per
    day; no file is looked at: only the hours a page reads are, by `existing`)."""
    return scan_window_folders(lake.table_dir("predictions"), period.start, period.end)


def existing(lake: Lake, folders: Sequence[WindowFolder]) -> list[Hour]:
    """Of these hour folders, those that still hold a predictions file, each with its scores file."""
    scores_base = str(lake.table_dir("scores"))
    found = []
    for folder in folders:
        if os.path.exists(folder.path):
            scores = os.path.join(scores_base, folder.relative)
            found.append(Hour(folder.path, scores if os.path.exists(scores) else None))
    return found


def _filters(ids: list[str] | None, period: TimeRange, alias: str) -> tuple[str, list]:
    """The chart's filters on the predictions (or scores) files aliased `alias`, as a WHERE clause."""
    where = sql.Where()
    if ids is not None:
        where.add(f"{alias}.model_id IN ({', '.join('?' for _ in ids)})", *ids)
    if period.start is not None:
        where.add(f"{alias}.round_ts >= ?", period.start)
    if period.end is not None:
        where.add(f"{alias}.round_ts < ?", period.end)
    return where.sql, where.params


def _source(chunk: list[Hour], ids: list[str] | None, period: TimeRange) -> tuple[str, list]:
    where_s, params_s = _filters(ids, period, "x")
    scores = [h.scores for h in chunk if h.scores]
    if scores:
        joined = (
            f"(SELECT x.prediction_id, x.round_ts, x.value, x.success, x.failed_reason "
            f"FROM read_parquet({_files(scores)}, hive_partitioning=false) x{where_s}) s"
        )
    else:
        joined, params_s = (
            "(SELECT CAST(NULL AS VARCHAR) AS prediction_id, CAST(NULL AS TIMESTAMPTZ) AS round_ts, CAST(NULL AS DOUBLE) AS value, "
            "CAST(NULL AS BOOLEAN) AS success, CAST(NULL AS VARCHAR) AS failed_reason WHERE false) s"
        ), []
    return f"read_parquet({_files([h.predictions for h in chunk])}, hive_partitioning=false) p LEFT JOIN {joined} ON {SCORE_JOIN}", params_s


def chart_rows(
    con: duckdb.DuckDBPyConnection, lake: Lake, ids: list[str] | None, period: TimeRange, limit: int, offset: int
) -> tuple[list[tuple], bool]:
    """Up to `limit` rows (model_id, prediction_id, scope_key, subject, performed_at, resolvable_at
    (both chart times), status, failed_reason, score_value, score_success) after skipping
    `offset`, oldest first; and whether more rows match."""
    where_p, params_p = _filters(ids, period, "p")
    todo, skip, rows = hours(lake, period), offset, []
    span = FIRST_SPAN
    while todo and len(rows) <= limit:
        folders, todo, span = todo[:span], todo[span:], span * 2
        chunk = existing(lake, folders)
        if not chunk:
            continue
        if skip:
            # Whole hours before the offset are counted, not read.
            _, [(count,)] = fetch_with_retry(
                con, f"SELECT count(*) FROM read_parquet({_files([h.predictions for h in chunk])}, hive_partitioning=false) p{where_p}", params_p
            )
            if count <= skip:
                skip -= count
                continue
        source, params_s = _source(chunk, ids, period)
        _, found = fetch_with_retry(
            con,
            f"SELECT {COLUMNS} FROM {source}{where_p} ORDER BY {ORDER} LIMIT ? OFFSET ?",
            [*params_s, *params_p, limit + 1 - len(rows), skip],
        )
        skip = 0
        rows.extend(found)
    return rows[:limit], len(rows) > limit
