"""The rows of the dashboard's predictions chart, read hour partition by hour partition.

The chart asks for every prediction of some models over days (`GET /reports/predictions`). Its
rows come oldest first, so they are read from the oldest hour partitions onwards, one hour at a
time, and reading stops once the page is full (one row more than the page, to know whether
another page exists): only the hours that hold the page are opened (or even looked at with a
`stat`), never the whole range. Each hour is decoded once per version of its files and held in
memory (`chart_hours`): a request filters held frames instead of scanning Parquet files. An
`offset` skips whole hours by their matching row counts.

The status and reason rules are the lake's `predictions` view's
(`coordinator_dagster.lake.views`), applied to explicit file lists instead of the view's globs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import duckdb

from api.deps import TimeRange
from api import sql
from api.dashboard.chart_hours import ChartHours, DecodedHour
from coordinator_dagster.lake.layout import WindowFolder, iter_window_folders
from coordinator_dagster.lake.memory import stat_identity
from coordinator_dagster.lake.reader import fetch_with_retry
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.lake.views import PREDICTION_FAILED_REASON, PREDICTION_STATUS, SCORE_JOIN, fills_join

# Times come out of DuckDB already in the chart's form (api.dashboard.shapes.chart_time): UTC
# without an offset, to the second; formatting ten thousand datetimes in Python costs more.
CHART_TIME = "strftime({} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S')"
COLUMNS = (
    f"p.model_id, p.prediction_id, p.scope_key, p.subject, {CHART_TIME.format('p.round_ts')} AS performed_at, "
    f"{CHART_TIME.format('p.resolvable_at')} AS resolvable_at, "
    f"{PREDICTION_STATUS} AS status, {PREDICTION_FAILED_REASON} AS failed_reason, s.value AS score_value, s.success AS score_success"
)
ORDER = "p.round_ts, p.model_id, p.scope_key, p.prediction_id"
# The decoded hours, shared by every request of the process (keyed by file path and identity).
HOURS = ChartHours()


@dataclass(frozen=True)
class Hour:
    predictions: str
    scores: str | None
    fills: str | None = None
    # (predictions, scores, fills) file identities when looked at, None for a missing file.
    identity: tuple | None = None


def _files(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def hours(lake: Lake, period: TimeRange) -> Iterator[WindowFolder]:
    """The predictions hour folders overlapping `period`, oldest first, listed one day at a time
    as they are asked for (a page of a week's range lists a day or two, not seven; no file is
    looked at: only the hours a page reads are, by `existing`)."""
    return iter_window_folders(lake.table_dir("predictions"), period.start, period.end)


def existing(lake: Lake, folders: Iterable[WindowFolder]) -> Iterator[Hour]:
    """Of these hour folders, those that still hold a predictions file, each with its scores
    and trading fills files; looked at one by one as they are asked for."""
    scores_base = str(lake.table_dir("scores"))
    fills_base = str(lake.table_dir("trading_fills"))
    for folder in folders:
        found = stat_identity(folder.path)
        if found is not None:
            scores = os.path.join(scores_base, folder.relative)
            fills = os.path.join(fills_base, folder.relative)
            scores_found, fills_found = stat_identity(scores), stat_identity(fills)
            # The identities ride along: one `stat` per file says both that it exists and which
            # version the held hour must match (`ChartHours.hour`).
            yield Hour(
                folder.path, scores if scores_found else None, fills if fills_found else None,
                identity=(found, scores_found, fills_found),
            )


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
    fills = [h.fills for h in chunk if h.fills]
    fills_source = f"read_parquet({_files(fills)}, hive_partitioning=false)" if fills else None
    return f"read_parquet({_files([h.predictions for h in chunk])}, hive_partitioning=false) p LEFT JOIN {joined} ON {SCORE_JOIN}{fills_join(fills_source)}", params_s


def hour_rows(con: duckdb.DuckDBPyConnection, hour: Hour) -> list[tuple]:
    """Every chart row of one hour (all models), in the chart's order, with the raw round time last."""
    source, params = _source([hour], None, TimeRange(None, None))
    return fetch_with_retry(con, f"SELECT {COLUMNS}, p.round_ts FROM {source} ORDER BY {ORDER}", params)[1]


class LazyCursor:
    """A reader's cursor opened on the first query: a page whose hours are all held runs none,
    so it skips the reader's freshness check and the cursor's set-up (about a tenth of such a
    request's CPU). A context manager, as a cursor is; closes the cursor if one was opened."""

    def __init__(self, open_cursor: Callable[[], duckdb.DuckDBPyConnection]):
        self._open = open_cursor
        self._con: duckdb.DuckDBPyConnection | None = None

    def execute(self, query: str, params: list | None = None) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = self._open()
        return self._con.execute(query, params)

    def __enter__(self) -> LazyCursor:
        return self

    def __exit__(self, *_: object) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _pages(
    con: duckdb.DuckDBPyConnection, lake: Lake, ids: list[str] | None, period: TimeRange, limit: int, offset: int, held: ChartHours
) -> Iterator[tuple[DecodedHour, Sequence[int]]]:
    """(hour, row numbers) holding the page's rows after skipping `offset`, oldest first: at most
    `limit + 1` rows in all (one more than the page says whether another page exists)."""
    skip, wanted = offset, limit + 1
    for hour in existing(lake, hours(lake, period)):
        decoded = held.hour(hour.predictions, hour.scores, lambda hour=hour: hour_rows(con, hour), hour.fills, hour.identity)
        numbers = decoded.numbers(ids, period.start, period.end)
        if len(numbers) <= skip:  # whole hours before the offset are counted, not kept
            skip -= len(numbers)
            continue
        numbers = numbers[skip : skip + wanted]
        skip, wanted = 0, wanted - len(numbers)
        yield decoded, numbers
        if wanted <= 0:  # before the next hour is looked at
            return


def chart_rows(
    con: duckdb.DuckDBPyConnection, lake: Lake, ids: list[str] | None, period: TimeRange, limit: int, offset: int, held: ChartHours = HOURS
) -> tuple[list[tuple], bool]:
    """Up to `limit` rows (model_id, prediction_id, scope_key, subject, performed_at, resolvable_at
    (both chart times), status, failed_reason, score_value, score_success) after skipping
    `offset`, oldest first; and whether more rows match."""
    rows = [decoded.rows[i] for decoded, numbers in _pages(con, lake, ids, period, limit, offset, held) for i in numbers]
    return rows[:limit], len(rows) > limit


def chart_texts(
    con: duckdb.DuckDBPyConnection | LazyCursor,
    lake: Lake,
    ids: list[str] | None,
    period: TimeRange,
    limit: int,
    offset: int,
    key: str,
    render: Callable[[tuple], str],
    held: ChartHours = HOURS,
) -> tuple[list[str], bool]:
    """The rows of `chart_rows`, each rendered by `render` (one renderer per `key`) once for as
    long as its hour is held."""
    texts = [text for decoded, numbers in _pages(con, lake, ids, period, limit, offset, held) for text in decoded.texts(numbers, key, render)]
    return texts[:limit], len(texts) > limit
