"""Predictions pages that do not scan the whole table.

Rows of an hour partition all have their `round_ts` inside that hour, and the API orders by
`round_ts` descending, so a page is found by walking the hour partitions newest first and reading
only the few that hold it. `total` stays exact: it is the sum of per-partition counts of the
matching rows, each cached under the partition files' identity (inode, size, mtime) and the
filters. A partition replaced by a run changes its identity, so only that hour is counted again;
an unfiltered count of an untouched lake costs one `stat` per file.

The SQL applies the lake's `predictions` view rules (`coordinator_dagster.lake.views`: status
SCORED derived from a score row or a trading fill, `failed_reason` from either side) to explicit
file lists instead of the view's globs.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from api.deps import Pagination, TimeRange
from coordinator_dagster.lake.layout import scan_window_folders
from coordinator_dagster.lake.reader import fetch_with_retry
from coordinator_dagster.lake.segments import SEGMENT_PREFIX, segment_names
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.lake.views import PREDICTION_FAILED_REASON, PREDICTION_STATUS, SCORE_JOIN, fills_join
from coordinator_dagster.statuses import PredictionStatus

ORDER = "p.round_ts DESC, p.scope_key, p.model_id, p.prediction_id"
COLUMNS = (
    "p.prediction_id, p.input_id, p.scope_key, p.subject, p.model_id, p.round_ts, p.resolvable_at, "
    f"{PREDICTION_STATUS} AS status, p.value, {PREDICTION_FAILED_REASON} AS failed_reason, s.value AS score_value"
)
CACHE_SIZE = 50_000
ATTEMPTS = 3


@dataclass(frozen=True)
class Filters:
    model_id: str | None
    subject: str | None
    scope_key: str | None
    status: str | None
    period: TimeRange

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for column in ("model_id", "subject", "scope_key"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"p.{column} = ?")
                params.append(value)
        if self.status is not None:
            clauses.append(f"{PREDICTION_STATUS} = ?")
            params.append(self.status)
        if self.period.start is not None:
            clauses.append("p.round_ts >= ?")
            params.append(self.period.start)
        if self.period.end is not None:
            clauses.append("p.round_ts < ?")
            params.append(self.period.end)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    @property
    def needs_scores_to_count(self) -> bool:
        # Only PENDING and SCORED depend on the score and fill rows; FAILED and ABSENT are as written.
        return self.status in (PredictionStatus.PENDING, PredictionStatus.SCORED)


@dataclass(frozen=True)
class Hour:
    key: str
    start: dt.datetime
    predictions: str
    scores: str | None
    fills: str | None
    identity: tuple


def _literal_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _identity(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class PredictionPager:
    def __init__(self, lake: Lake):
        self.lake = lake
        self._counts: OrderedDict[tuple, int] = OrderedDict()
        self._lock = threading.Lock()

    # ---- partitions ---------------------------------------------------------------------------
    def _hours(self, period: TimeRange) -> list[Hour]:
        """The predictions hour partitions overlapping `period`, newest first, with the matching
        scores and trading fills partitions (the same hive folders under those tables)."""
        scores_base = str(self.lake.table_dir("scores"))
        fills_base = str(self.lake.table_dir("trading_fills"))
        hours = []
        for folder in scan_window_folders(self.lake.table_dir("predictions"), period.start, period.end):
            source, mine = folder.path, _identity(folder.path)
            if mine is None:
                # An open hour written as segments (lake/segments.py): read them all by a glob.
                names = segment_names(Path(folder.path).parent)
                if not names:
                    continue
                source = os.path.join(os.path.dirname(folder.path), f"{SEGMENT_PREFIX}*.parquet")
                mine = tuple(names)
            scores_path = os.path.join(scores_base, folder.relative)
            theirs = _identity(scores_path)
            fills_path = os.path.join(fills_base, folder.relative)
            filled = _identity(fills_path)
            hours.append(Hour(folder.key, folder.start, source, scores_path if theirs else None, fills_path if filled else None, (mine, theirs, filled)))
        hours.reverse()
        return hours

    def _from(self, hours: list[Hour], with_scores: bool) -> str:
        source = f"read_parquet({_literal_list([h.predictions for h in hours])}, filename=true, hive_partitioning=false) p"
        scores = [h.scores for h in hours if h.scores]
        if with_scores and scores:
            source += (
                f" LEFT JOIN (SELECT prediction_id, round_ts, value, failed_reason FROM read_parquet({_literal_list(scores)}, hive_partitioning=false)) s"
                f" ON {SCORE_JOIN}"
            )
        else:
            source += (
                " LEFT JOIN (SELECT CAST(NULL AS VARCHAR) AS prediction_id, CAST(NULL AS TIMESTAMPTZ) AS round_ts, "
                "CAST(NULL AS DOUBLE) AS value, CAST(NULL AS VARCHAR) AS failed_reason WHERE false) s ON false"
            )
        fills = [h.fills for h in hours if h.fills]
        return source + fills_join(f"read_parquet({_literal_list(fills)}, hive_partitioning=false)" if with_scores and fills else None)

    # ---- counts -------------------------------------------------------------------------------
    def _count(self, con: duckdb.DuckDBPyConnection, hours: list[Hour], filters: Filters) -> dict[str, int]:
        identity_of = (lambda h: h.identity) if filters.needs_scores_to_count else (lambda h: h.identity[0])
        counts, missing = {}, []
        with self._lock:
            for hour in hours:
                cached = self._counts.get((hour.key, identity_of(hour), filters))
                if cached is None:
                    missing.append(hour)
                else:
                    self._counts.move_to_end((hour.key, identity_of(hour), filters))
                    counts[hour.key] = cached
        if missing:
            where, params = filters.where()
            _, found = fetch_with_retry(
                con, f"SELECT p.filename, count(*) FROM {self._from(missing, filters.needs_scores_to_count)}{where} GROUP BY p.filename", params
            )
            by_folder: dict[str, int] = {}  # an hour's rows may sit in several segment files
            for filename, count in found:
                by_folder[os.path.dirname(filename)] = by_folder.get(os.path.dirname(filename), 0) + count
            with self._lock:
                for hour in missing:
                    counts[hour.key] = by_folder.get(os.path.dirname(hour.predictions), 0)
                    self._counts[(hour.key, identity_of(hour), filters)] = counts[hour.key]
                while len(self._counts) > CACHE_SIZE:
                    self._counts.popitem(last=False)
        return counts

    # ---- pages --------------------------------------------------------------------------------
    def page(self, con: duckdb.DuckDBPyConnection, filters: Filters, page: Pagination) -> tuple[list[dict[str, Any]], int]:
        for attempt in range(ATTEMPTS):
            try:
                return self._page(con, filters, page)
            except (duckdb.IOException, duckdb.InvalidInputException):
                # A partition was replaced or removed between listing and reading: list again.
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _page(self, con: duckdb.DuckDBPyConnection, filters: Filters, page: Pagination) -> tuple[list[dict[str, Any]], int]:
        hours = self._hours(filters.period)
        if not hours:
            return [], 0
        counts = self._count(con, hours, filters)
        total = sum(counts.values())
        if page.offset >= total:
            return [], total
        before, chosen, covered = 0, [], 0
        for hour in hours:
            n = counts[hour.key]
            if not chosen and before + n <= page.offset:
                before += n
                continue
            if n:
                chosen.append(hour)
            covered = before + sum(counts[h.key] for h in chosen)
            if covered >= page.offset + page.limit:
                break
        where, params = filters.where()
        names, found = fetch_with_retry(
            con,
            f"SELECT {COLUMNS} FROM {self._from(chosen, True)}{where} ORDER BY {ORDER} LIMIT ? OFFSET ?",
            [*params, page.limit, page.offset - before],
        )
        return [dict(zip(names, row, strict=True)) for row in found], total
