"""`api.dashboard.snapshot_totals`: each model's snapshot totals over a range, from running totals
built once, equal to the GROUP BY over the snapshots view that `/reports/models/global` ran per
request, for ranges cutting hours anywhere (and non-finite values left out of the mean)."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from api.dashboard.snapshot_totals import build, totals
from api.deps import TimeRange
from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 20, tzinfo=UTC)
HOURS = 6
GROUP_BY = (
    "SELECT model_id, count(*) AS snapshot_count, coalesce(sum(prediction_count), 0) AS prediction_count, "
    "coalesce(sum(scored_count), 0) AS scored_count, coalesce(sum(failed_count), 0) AS failed_count, "
    "avg(CASE WHEN isfinite(value) THEN value END) AS mean_value, min(period_start) AS first_period, "
    "max(period_start) AS last_period, max(period_end) AS last_end FROM snapshots {where} GROUP BY model_id ORDER BY model_id"
)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("totals"))
    values = {"m-a": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "m-b": [1.0, float("nan"), 3.0, float("inf"), 5.0, 6.0], "m-c": [None, None, 2.5, None, None, None]}
    for h in range(HOURS):
        hour = START + dt.timedelta(hours=h)
        rows = [
            {"model_id": m, "period_start": hour, "period_end": hour + dt.timedelta(hours=1), "prediction_count": 10 * h + i,
             "scored_count": None if m == "m-c" else 9 * h + i, "failed_count": i, "value": v[h], "result_summary": json.dumps({}),
             "scoring_version": "v1"}
            for i, (m, v) in enumerate(values.items())
            if not (m == "m-c" and h == 0)  # m-c joined an hour late
        ]
        lake.write("snapshots", schemas.conform(pl.DataFrame(rows), schemas.SNAPSHOTS, "snapshots"), hour.strftime(WINDOW_KEY_FORMAT))
    return lake


def test_worked_example(lake):
    with lake.reader().cursor() as con:
        series = build(con, None)
    period = TimeRange(START + dt.timedelta(minutes=30), START + dt.timedelta(hours=4))  # hours 1, 2 and 3
    got = {row["model_id"]: row for row in totals(series, period)}
    assert got["m-a"]["snapshot_count"] == 3 and got["m-a"]["prediction_count"] == 10 + 20 + 30
    assert got["m-a"]["mean_value"] == pytest.approx(0.3)
    assert got["m-b"]["mean_value"] == 3.0  # NaN and infinity left out: only 3.0 remains
    assert got["m-c"]["scored_count"] == 0 and got["m-c"]["mean_value"] == 2.5
    assert got["m-a"]["first_period"] == START + dt.timedelta(hours=1) and got["m-a"]["last_end"] == START + dt.timedelta(hours=4)
    assert [r["model_id"] for r in totals(series, period, ["m-c", "m-x", "m-a"])] == ["m-c", "m-a"]
    assert totals(series, TimeRange(START + dt.timedelta(hours=HOURS), None)) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [(None, None), (0, None), (None, 3), (1, 5), (0.5, 2.5), (2, 2), (5.5, 9), (-3, 0.25)],
)
def test_equal_to_the_group_by_over_the_snapshots(lake, start, end):
    at = lambda h: None if h is None else START + dt.timedelta(hours=h)  # noqa: E731
    period = TimeRange(at(start), at(end))
    where, params = [], []
    if period.start is not None:
        where.append("period_start >= ?")
        params.append(period.start)
    if period.end is not None:
        where.append("period_start < ?")
        params.append(period.end)
    with lake.reader().cursor() as con:
        cursor = con.execute(GROUP_BY.format(where=f"WHERE {' AND '.join(where)}" if where else ""), params)
        names = [d[0] for d in cursor.description]
        want = [dict(zip(names, row)) for row in cursor.fetchall()]
        got = sorted(totals(build(con, None), period), key=lambda r: r["model_id"])
    assert [{k: v for k, v in r.items() if k != "mean_value"} for r in got] == [{k: v for k, v in r.items() if k != "mean_value"} for r in want]
    assert [r["mean_value"] for r in got] == pytest.approx([r["mean_value"] for r in want], rel=1e-12)
