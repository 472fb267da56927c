"""Each feed and inputs check as a plain function: one case where it passes, one where it fails."""

import datetime as dt

import polars as pl

from coordinator_dagster.feeds import checks as fc
from coordinator_dagster.lake import schemas

T0 = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)


def records(prices: dict[str, list[float]], minutes: list[int] | None = None) -> pl.DataFrame:
    rows = []
    for subject, series in prices.items():
        for i, price in enumerate(series):
            minute = minutes[i] if minutes else i
            rows.append({"source": "x", "subject": subject, "kind": "candle", "granularity": "1m", "ts_event": T0 + dt.timedelta(minutes=minute),
                         "open": price, "high": price, "low": price, "close": price, "volume": 1.0, "price": price})
    return schemas.conform(pl.DataFrame(rows), schemas.FEED_RECORDS, "feed_records")


def moving(n: int, base: float = 100.0) -> list[float]:
    return [base + i * 0.5 for i in range(n)]


def test_no_duplicates():
    good = records({"BTC": moving(5), "ETH": moving(5)})
    assert fc.no_duplicates(good).passed
    bad = fc.no_duplicates(pl.concat([good, good.head(1)]))
    assert not bad.passed and bad.metadata["duplicates"] == 1 and bad.metadata["examples"] == ["BTC@2026-11-20T10:00:00Z"]


def test_monotonic():
    assert fc.monotonic(records({"BTC": moving(5)})).passed
    shuffled = records({"BTC": moving(3)}, minutes=[0, 2, 1])
    outcome = fc.monotonic(shuffled)
    assert not outcome.passed and outcome.metadata["out_of_order"] == 1


def test_no_gaps_inside_and_at_the_edges():
    end = T0 + dt.timedelta(minutes=10)
    assert fc.no_gaps(records({"BTC": moving(10)}), ["BTC"], T0, end, 60).passed
    inner = fc.no_gaps(records({"BTC": moving(8)}, minutes=[0, 1, 2, 5, 6, 7, 8, 9]), ["BTC"], T0, end, 60)
    assert not inner.passed and inner.metadata["missing_records"] == 2
    assert inner.metadata["examples"] == ["BTC 2026-11-20T10:03:00Z..2026-11-20T10:05:00Z"]
    trailing = fc.no_gaps(records({"BTC": moving(9)}), ["BTC"], T0, end, 60)
    assert not trailing.passed and trailing.metadata["missing_records"] == 1
    absent = fc.no_gaps(records({"BTC": moving(10)}), ["BTC", "ETH"], T0, end, 60)
    assert not absent.passed and absent.metadata["missing_records"] == 10


def test_gap_tolerance():
    end = T0 + dt.timedelta(minutes=10)
    holed = records({"BTC": moving(9)}, minutes=[0, 1, 2, 4, 5, 6, 7, 8, 9])
    assert not fc.no_gaps(holed, ["BTC"], T0, end, 60, max_gap_steps=1).passed
    assert fc.no_gaps(holed, ["BTC"], T0, end, 60, max_gap_steps=2).passed


def test_freshness():
    frame = records({"BTC": moving(10)})  # newest 10:09
    assert fc.fresh(frame, ["BTC"], T0 + dt.timedelta(minutes=11), 180).passed
    stale = fc.fresh(frame, ["BTC", "ETH"], T0 + dt.timedelta(minutes=20), 180)
    assert not stale.passed and "BTC: 660 s old" in stale.metadata["stale"] and "ETH: no record" in stale.metadata["stale"]


def test_frozen_price():
    assert fc.not_frozen(records({"BTC": moving(40)}), 30).passed
    flat = records({"BTC": moving(5) + [200.0] * 30 + moving(5)})
    outcome = fc.not_frozen(flat, 30)
    assert not outcome.passed and outcome.metadata["frozen_runs"] == 1
    assert fc.not_frozen(flat, 31).passed


def test_positive_prices():
    assert fc.positive_prices(records({"BTC": moving(5)})).passed
    for bad in (0.0, -1.0, float("nan")):
        assert not fc.positive_prices(records({"BTC": [*moving(4), bad]})).passed
    missing_open = records({"BTC": moving(3)}).with_columns(open=pl.lit(None, pl.Float64))
    assert not fc.positive_prices(missing_open).passed


def test_feed_outcomes_judge_freshness_only_for_live_windows():
    frame = records({"BTC": moving(60)})
    end = T0 + dt.timedelta(hours=1)
    much_later = T0 + dt.timedelta(days=3)
    historical = {o.name: o for o in fc.feed_outcomes(frame, ["BTC"], T0, end, 60, much_later, fc.FeedCheckConfig(), live=False)}
    assert all(o.passed for o in historical.values()) and set(historical) == set(fc.ALL_FEED_CHECKS)
    live = {o.name: o for o in fc.feed_outcomes(frame, ["BTC"], T0, end, 60, much_later, fc.FeedCheckConfig(), live=True)}
    assert not live[fc.FRESH].passed


def test_lake_failures_lists_only_failed_rules():
    frame = records({"BTC": [*moving(4), -1.0]})
    end = T0 + dt.timedelta(minutes=5)
    assert [o.name for o in fc.lake_failures(frame, ["BTC"], T0, end, 60, fc.FeedCheckConfig())] == [fc.POSITIVE]


def test_inputs_checks():
    base = {"input_id": "a", "scope_key": "btc-60s", "subject": "BTC", "round_ts": T0, "resolvable_at": T0, "step_seconds": 60,
            "horizon_seconds": 60, "window_ts": [T0], "window_close": [1.0], "record_count": 1, "last_record_ts": T0}
    good = schemas.conform(schemas.upgrade(pl.DataFrame([base]), schemas.INPUTS, "inputs"), schemas.INPUTS, "inputs")
    assert all(o.passed for o in fc.inputs_outcomes(good))
    dup = pl.concat([good, good])
    assert [o.passed for o in fc.inputs_outcomes(dup)] == [False, True]
    nan = pl.DataFrame([{**base, "window_close": [1.0, float("nan")], "window_ts": [T0, T0]}])
    nan = schemas.conform(schemas.upgrade(nan, schemas.INPUTS, "inputs"), schemas.INPUTS, "inputs")
    assert [o.passed for o in fc.inputs_outcomes(nan)] == [True, False]


def test_default_tolerances_scale_with_the_granularity():
    # Durations, not counts: a 10 s hole and 30 unchanged minutes, at least 1 step and 30 records.
    assert fc.FeedCheckConfig.for_step(1) == fc.FeedCheckConfig(10, 1800, 180)
    assert fc.FeedCheckConfig.for_step(60) == fc.FeedCheckConfig() == fc.FeedCheckConfig(1, 30, 180)
    assert fc.FeedCheckConfig.for_step(3600) == fc.FeedCheckConfig(1, 30, 180)
    assert fc.FeedCheckConfig.for_step(1, max_gap_steps=2, frozen_records=40) == fc.FeedCheckConfig(2, 40, 180)
    # A 1 s tick stream that skips a few seconds and holds a price for a minute passes at 1 s,
    # where the one-minute tolerances would block it.
    seconds = [s for s in range(600) if s % 97 not in (5, 6, 7)]  # 3-second holes
    frame = pl.DataFrame(
        {"subject": "BTC", "ts_event": [T0 + dt.timedelta(seconds=s) for s in seconds], "close": [100.0 + (s // 60) for s in seconds]}
    )
    end = T0 + dt.timedelta(seconds=600)
    scaled = fc.FeedCheckConfig.for_step(1)
    assert fc.no_gaps(frame, ["BTC"], T0, end, 1, scaled.max_gap_steps).passed
    assert fc.not_frozen(frame, scaled.frozen_records).passed
    assert not fc.no_gaps(frame, ["BTC"], T0, end, 1, 1).passed
    assert not fc.not_frozen(frame, 30).passed
