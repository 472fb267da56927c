"""Every model's snapshot totals over a time range, from per-model series built once per change
of the snapshots (`api.prebuilt`).

`GET /reports/models/global` sums each model's hourly snapshots between the dashboard's `start`
and `end`, which move with every request, so no answer can be stored whole; a GROUP BY over the
in-memory snapshots per request costs about ten milliseconds of the worker's CPU. Instead each
model's snapshots are held sorted by hour with running totals of their counts: a range is two
binary searches per model, its counts two subtractions (exact: integers), and its mean value an
exactly rounded sum (`math.fsum`) of the finite values in it, as `avg` over the finite values
gives up to its own rounding.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from dataclasses import dataclass
from typing import Any

import duckdb

from api.deps import TimeRange
from api.prebuilt import Answer
from coordinator_dagster.lake.reader import fetch_with_retry

COUNTS = ("prediction_count", "scored_count", "failed_count")


@dataclass(frozen=True)
class ModelSeries:
    """One model's snapshots, oldest first: hour starts and ends, running totals of each count
    (one more entry than snapshots, from 0) and each finite value (None for the others)."""

    starts: list[dt.datetime]
    ends: list[dt.datetime]
    running: dict[str, list[int]]
    values: list[float | None]

    def totals(self, model_id: str, period: TimeRange) -> dict[str, Any] | None:
        """The model's totals over the snapshots starting in [start, end); None when it has none."""
        low = 0 if period.start is None else bisect.bisect_left(self.starts, period.start)
        high = len(self.starts) if period.end is None else bisect.bisect_left(self.starts, period.end)
        if high <= low:
            return None
        finite = [v for v in self.values[low:high] if v is not None]
        return {
            "model_id": model_id,
            "snapshot_count": high - low,
            **{name: self.running[name][high] - self.running[name][low] for name in COUNTS},
            "mean_value": math.fsum(finite) / len(finite) if finite else None,
            "first_period": self.starts[low],
            "last_period": self.starts[high - 1],
            "last_end": max((e for e in self.ends[low:high] if e is not None), default=None),
        }


def build(db: duckdb.DuckDBPyConnection, _: object) -> dict[str, ModelSeries]:
    _, found = fetch_with_retry(
        db,
        f"SELECT model_id, period_start, period_end, {', '.join(COUNTS)}, value FROM snapshots ORDER BY model_id, period_start",
    )
    series = {}
    for model_id, rows in itertools.groupby(found, key=lambda r: r[0]):
        rows = list(rows)
        running = {name: list(itertools.accumulate((r[3 + i] or 0 for r in rows), initial=0)) for i, name in enumerate(COUNTS)}
        values = [r[6] if r[6] is not None and math.isfinite(r[6]) else None for r in rows]
        series[model_id] = ModelSeries([r[1] for r in rows], [r[2] for r in rows], running, values)
    return series


SNAPSHOT_SERIES = Answer("snapshot series", ("snapshots",), build)


def totals(series: dict[str, ModelSeries], period: TimeRange, ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Per model (of `ids`, when given) with snapshots in `period`: snapshot_count, the summed
    counts, mean_value, first_period, last_period and last_end (the rows the GROUP BY gave)."""
    picked = series.items() if ids is None else ((m, series[m]) for m in dict.fromkeys(ids) if m in series)
    found = (s.totals(model_id, period) for model_id, s in picked)
    return [row for row in found if row is not None]
