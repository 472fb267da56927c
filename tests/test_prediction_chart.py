"""The predictions chart's reader (`api.dashboard.prediction_chart`): hour by hour, the same rows
in the same order as one query over the whole `predictions` view, for every offset and limit;
the decoded hours it holds (`api.dashboard.chart_hours`) follow their files and stay bounded."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from api.dashboard.chart_hours import ChartHours
from api.dashboard.prediction_chart import LazyCursor, chart_rows, chart_texts
from api.deps import TimeRange
from tests.api_fixtures import SEED_START, seed_lake

HOURS = 20


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return seed_lake(tmp_path_factory.mktemp("chart"), hours=HOURS, every_minutes=30).lake


def expected(lake, ids, period):
    where, params = ["true"], []
    if ids:
        where.append(f"model_id IN ({', '.join('?' for _ in ids)})")
        params += ids
    if period.start:
        where.append("round_ts >= ?")
        params.append(period.start)
    if period.end:
        where.append("round_ts < ?")
        params.append(period.end)
    frame = lake.query(
        "SELECT model_id, prediction_id, round_ts, status, score_value FROM predictions "
        f"WHERE {' AND '.join(where)} ORDER BY round_ts, model_id, scope_key, prediction_id",
        params,
    )
    return [(r["model_id"], r["prediction_id"], r["status"], r["score_value"]) for r in frame.iter_rows(named=True)]


@pytest.mark.parametrize(
    ("ids", "offset", "limit"),
    [(None, 0, 10), (None, 0, 10_000), (["m-beta"], 0, 30), (["m-beta"], 23, 30), (["m-alpha", "m-gamma"], 47, 13), (None, 60, 100), (None, 200, 30), (None, 221, 5), (None, 222, 5), (["m-gamma"], 1000, 5)],
)
def test_pages_match_one_query_over_the_view(lake, ids, offset, limit):
    period = TimeRange(SEED_START + dt.timedelta(minutes=30), SEED_START + dt.timedelta(hours=HOURS - 1))
    with lake.reader().cursor() as con:
        rows, more = chart_rows(con, lake, ids, period, limit, offset, ChartHours())
    want = expected(lake, ids, period)
    assert [(r[0], r[1], r[6], r[8]) for r in rows] == want[offset : offset + limit]
    assert more == (len(want) > offset + limit)
    assert all(r[4].endswith(":00") and "+" not in r[4] and "Z" not in r[4] for r in rows)  # chart times


def test_a_replaced_hour_is_read_again_and_only_the_hours_of_the_page_are_held(tmp_path):
    seeded = seed_lake(tmp_path, hours=4, every_minutes=30)
    lake, held = seeded.lake, ChartHours(max_hours=2)
    period = TimeRange(seeded.start, seeded.end)
    with lake.reader().cursor() as con:
        first, more = chart_rows(con, lake, ["m-alpha"], period, 5, 0, held)
        assert more and len(held) == 2  # 5 rows (and one to know of more): 2 hours of 2 rounds × 2 scopes
        # A re-run scores the first hour differently: the next page shows it, not the held copy.
        key = seeded.window_keys[0]
        hour = seeded.scores.filter(pl.col("round_ts") < seeded.start + dt.timedelta(hours=1))
        lake.write("scores", hour.with_columns(pl.col("value") + 1000.0), key)
        again, _ = chart_rows(con, lake, ["m-alpha"], period, 5, 0, held)
        assert [r[8] for r in again[:4]] == [r[8] + 1000.0 for r in first[:4] if r[8] is not None]
        assert again[4] == first[4]
        everything, more = chart_rows(con, lake, None, period, 10_000, 0, held)
        assert not more and len(held) == 2  # older hours went first
    assert [r[1] for r in everything] == [r[1] for r in chart_rows(lake.reader().cursor(), lake, None, period, 10_000, 0, ChartHours())[0]]


def test_texts_are_the_rows_rendered_each_once_per_hour_held(lake):
    period = TimeRange(SEED_START, SEED_START + dt.timedelta(hours=HOURS))
    held, calls = ChartHours(), []

    def render(row):
        calls.append(row[1])
        return f"<{row[1]}>"

    with lake.reader().cursor() as con:
        rows, more = chart_rows(con, lake, ["m-beta"], period, 30, 7, held)
        for _ in range(2):
            assert chart_texts(con, lake, ["m-beta"], period, 30, 7, "k", render, held) == ([f"<{r[1]}>" for r in rows], more)
    # Each row of the page (and the one after it, read to know of more) rendered once for both asks.
    assert more and len(calls) == len(set(calls)) == len(rows) + 1 and set(calls) >= {r[1] for r in rows}


def test_a_page_whose_hours_are_all_held_opens_no_cursor(lake):
    period = TimeRange(SEED_START, SEED_START + dt.timedelta(hours=3))
    held, opened = ChartHours(), []
    reader = lake.reader()

    def open_cursor():
        opened.append(1)
        return reader.cursor()

    with LazyCursor(open_cursor) as con:
        first = chart_rows(con, lake, ["m-beta"], period, 50, 0, held)
    assert opened == [1]  # the hours were read
    with LazyCursor(open_cursor) as con:
        again = chart_rows(con, lake, ["m-beta"], period, 50, 0, held)
    assert opened == [1] and again == first and first[0]  # answered from the held hours
