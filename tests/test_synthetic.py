"""The synthetic feed: determinism, window independence, aggregation consistency and realism."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from coordinator_dagster.feeds import synthetic
from coordinator_dagster.lake import schemas
from coordinator_dagster.feeds.granularity import GranularityError, granularity_seconds
from coordinator_dagster.feeds.synthetic import SYNTHETIC_ORIGIN, generate_records

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def records(start, end, *, kind="candle", granularity="1m", seed=7, subject="BTC") -> pl.DataFrame:
    return generate_records(
        seed=seed, subject=subject, kind=kind, granularity=granularity, start=start, end=end
    )


def forget_generated_days() -> None:
    # Without this a second call would only read the cache and prove nothing about recomputation.
    synthetic._day_path.cache_clear()
    synthetic._profile.cache_clear()


def log_returns(prices) -> np.ndarray:
    return np.diff(np.log(np.asarray(prices, dtype=float)))


def autocorrelation(x: np.ndarray, lag: int = 1) -> float:
    x = x - x.mean()
    return float((x[:-lag] * x[lag:]).sum() / (x * x).sum())


# --- shape -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["candle", "tick"])
def test_schema_matches_feed_records(kind):
    frame = records(at(2024, 5, 1, 10), at(2024, 5, 1, 11), kind=kind)
    assert frame.schema == schemas.FEED_RECORDS
    assert frame.height == 60
    assert frame["source"].unique().to_list() == ["synthetic"]
    assert frame["subject"].unique().to_list() == ["BTC"]
    assert frame["kind"].unique().to_list() == [kind]
    assert frame["granularity"].unique().to_list() == ["1m"]
    assert frame["ts_event"].is_sorted()
    assert frame["ts_event"].n_unique() == frame.height


def test_candle_columns_are_coherent():
    frame = records(at(2024, 5, 1), at(2024, 5, 2), granularity="5m")
    assert frame.null_count().sum_horizontal().item() == 0
    assert (frame["price"] == frame["close"]).all()
    assert (frame["low"] <= frame["open"]).all() and (frame["open"] <= frame["high"]).all()
    assert (frame["low"] <= frame["close"]).all() and (frame["close"] <= frame["high"]).all()
    assert (frame["high"] > frame["low"]).all()  # 300 seconds of a diffusion never stand still
    assert (frame["volume"] > 0).all()


def test_tick_columns_are_coherent():
    frame = records(at(2024, 5, 1), at(2024, 5, 1, 1), kind="tick", granularity="1s")
    assert frame.height == 3600
    for column in ("open", "high", "low"):
        assert frame[column].null_count() == frame.height
    assert (frame["close"] == frame["price"]).all()
    assert frame["price"].null_count() == 0
    assert (frame["volume"] > 0).all()
    assert frame["volume"].n_unique() > 3000  # a trade size per tick, not a constant


@pytest.mark.parametrize("subject", ["BTC", "ETH", "SOL", "some-obscure-token"])
def test_prices_and_volumes_are_positive_and_finite(subject):
    frame = records(at(2025, 2, 27), at(2025, 3, 3), subject=subject, granularity="1m")
    values = frame.select("open", "high", "low", "close", "volume", "price").to_numpy()
    assert np.isfinite(values).all()
    assert (values > 0).all()


# --- determinism -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "granularity"), [("candle", "1m"), ("tick", "1s"), ("candle", "1h")]
)
def test_same_arguments_give_identical_frames(kind, granularity):
    start, end = at(2024, 9, 3, 20), at(2024, 9, 4, 4)
    first = records(start, end, kind=kind, granularity=granularity)
    forget_generated_days()
    second = records(start, end, kind=kind, granularity=granularity)
    assert first.height > 0
    assert first.equals(second)


def test_seed_changes_the_data():
    start, end = at(2024, 9, 3), at(2024, 9, 3, 2)
    a = records(start, end, seed=1)
    b = records(start, end, seed=2)
    assert not np.allclose(a["close"].to_numpy(), b["close"].to_numpy())
    assert not np.allclose(log_returns(a["close"]), log_returns(b["close"]))


def test_subject_changes_the_data():
    start, end = at(2024, 9, 3), at(2024, 9, 3, 2)
    btc = records(start, end, subject="BTC")
    eth = records(start, end, subject="ETH")
    assert not np.allclose(log_returns(btc["close"]), log_returns(eth["close"]))
    # Same base asset, different spelling: same price level but its own independent path.
    btc_usdt = records(start, end, subject="BTCUSDT")
    assert not np.allclose(log_returns(btc["close"]), log_returns(btc_usdt["close"]))


# --- window independence ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "granularity"), [("candle", "1m"), ("tick", "1s"), ("candle", "5m")]
)
def test_overlapping_windows_agree(kind, granularity):
    options = {"kind": kind, "granularity": granularity}
    wide = records(at(2024, 7, 1, 10), at(2024, 7, 1, 11), **options)
    forget_generated_days()
    shifted = records(at(2024, 7, 1, 10, 30), at(2024, 7, 1, 12), **options)
    overlap_start, overlap_end = at(2024, 7, 1, 10, 30), at(2024, 7, 1, 11)

    def overlap(frame):
        inside = pl.col("ts_event").is_between(overlap_start, overlap_end, closed="left")
        return frame.filter(inside)

    assert overlap(wide).height > 0
    assert overlap(wide).equals(overlap(shifted))


@pytest.mark.parametrize(("kind", "granularity"), [("candle", "1m"), ("tick", "1s")])
def test_windows_crossing_midnight_agree_whatever_was_generated_first(kind, granularity):
    # Ask for the later day first so the daily series is built out of order.
    late = records(at(2024, 8, 15, 23, 30), at(2024, 8, 16, 1), kind=kind, granularity=granularity)
    forget_generated_days()
    wide = records(at(2024, 8, 15, 22), at(2024, 8, 16, 2), kind=kind, granularity=granularity)
    next_day_only = records(at(2024, 8, 16), at(2024, 8, 16, 1), kind=kind, granularity=granularity)

    assert wide.filter(pl.col("ts_event") >= at(2024, 8, 15, 23, 30)).filter(
        pl.col("ts_event") < at(2024, 8, 16, 1)
    ).equals(late)
    assert late.filter(pl.col("ts_event") >= at(2024, 8, 16)).equals(next_day_only)


# --- aggregation consistency -----------------------------------------------------------------


def aggregate(frame: pl.DataFrame, every: str) -> pl.DataFrame:
    return (
        frame.group_by_dynamic("ts_event", every=every, closed="left", label="left")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .sort("ts_event")
    )


@pytest.mark.parametrize(
    ("fine", "coarse", "every"), [("1m", "5m", "5m"), ("1h", "1d", "1d"), ("1s", "1m", "1m")]
)
def test_coarse_candles_aggregate_fine_candles(fine, coarse, every):
    start, end = at(2024, 10, 5), at(2024, 10, 7)
    if fine == "1s":
        end = at(2024, 10, 5, 2)
    fine_frame = records(start, end, granularity=fine)
    coarse_frame = records(start, end, granularity=coarse).select(
        "ts_event", "open", "high", "low", "close", "volume"
    )
    expected = aggregate(fine_frame, every)
    assert coarse_frame.height == expected.height > 0
    assert coarse_frame["ts_event"].equals(expected["ts_event"])
    for column in ("open", "high", "low", "close"):
        assert coarse_frame[column].to_list() == expected[column].to_list(), column
    np.testing.assert_allclose(
        coarse_frame["volume"].to_numpy(), expected["volume"].to_numpy(), rtol=1e-12
    )


def test_minute_candles_read_off_the_one_second_ticks():
    start, end = at(2024, 10, 5, 13), at(2024, 10, 5, 14)
    ticks = records(start, end, kind="tick", granularity="1s")
    candles = records(start, end, granularity="1m")
    prices = ticks["price"].to_numpy().reshape(60, 60)
    sizes = ticks["volume"].to_numpy().reshape(60, 60)
    np.testing.assert_array_equal(candles["open"].to_numpy(), prices[:, 0])
    np.testing.assert_array_equal(candles["close"].to_numpy(), prices[:, 59])  # second 59
    assert (candles["high"].to_numpy()[:, None] >= prices).all()
    assert (candles["low"].to_numpy()[:, None] <= prices).all()
    np.testing.assert_array_equal(candles["high"].to_numpy(), prices.max(axis=1))
    np.testing.assert_array_equal(candles["low"].to_numpy(), prices.min(axis=1))
    np.testing.assert_allclose(candles["volume"].to_numpy(), sizes.sum(axis=1), rtol=1e-12)


def test_coarse_ticks_sample_the_same_path():
    start, end = at(2024, 10, 5, 13), at(2024, 10, 5, 14)
    every_second = records(start, end, kind="tick", granularity="1s")
    every_minute = records(start, end, kind="tick", granularity="1m")
    sampled = every_second.filter(pl.col("ts_event").dt.second() == 0)
    assert every_minute.select("ts_event", "price", "volume").equals(
        sampled.select("ts_event", "price", "volume")
    )


# --- continuity and alignment ----------------------------------------------------------------


@pytest.mark.parametrize("midnight", [at(2024, 3, 1), at(2024, 11, 20), at(2025, 6, 30)])
def test_day_boundary_is_continuous(midnight):
    hour = dt.timedelta(hours=1)
    ticks = records(midnight - hour, midnight + hour, kind="tick", granularity="1s")
    returns = log_returns(ticks["price"])
    boundary = 3599  # return from 23:59:59 to 00:00:00
    assert ticks["ts_event"][boundary + 1] == midnight
    typical = np.std(np.delete(returns, boundary))
    assert typical > 0
    assert abs(returns[boundary]) < 10 * typical


def test_records_are_aligned_to_the_epoch_grid():
    frame = records(at(2024, 6, 1, 10, 2, 30), at(2024, 6, 1, 11, 3), granularity="5m")
    stamps = frame["ts_event"].to_list()
    assert stamps[0] == at(2024, 6, 1, 10, 5)
    assert stamps[-1] == at(2024, 6, 1, 11, 0)
    assert all(int(ts.timestamp()) % 300 == 0 for ts in stamps)


def test_window_is_half_open():
    frame = records(at(2024, 6, 1, 10), at(2024, 6, 1, 10, 5))
    assert frame["ts_event"].to_list() == [at(2024, 6, 1, 10, m) for m in range(5)]
    # A sub-second start excludes the second it falls in; a sub-second end includes it.
    ticks = records(
        dt.datetime(2024, 6, 1, 10, 0, 0, 500_000, tzinfo=UTC),
        dt.datetime(2024, 6, 1, 10, 0, 3, 1, tzinfo=UTC),
        kind="tick",
        granularity="1s",
    )
    assert ticks["ts_event"].to_list() == [at(2024, 6, 1, 10, 0, s) for s in (1, 2, 3)]


def test_non_utc_aware_bounds_are_converted():
    paris_summer = dt.timezone(dt.timedelta(hours=2))
    local = records(
        dt.datetime(2024, 6, 1, 12, tzinfo=paris_summer),
        dt.datetime(2024, 6, 1, 13, tzinfo=paris_summer),
    )
    assert local.equals(records(at(2024, 6, 1, 10), at(2024, 6, 1, 11)))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (at(2024, 6, 1, 10), at(2024, 6, 1, 10)),
        (at(2024, 6, 1, 11), at(2024, 6, 1, 10)),
        (at(2024, 6, 1, 10, 0, 10), at(2024, 6, 1, 10, 0, 50)),  # no minute boundary inside
    ],
)
def test_empty_window_gives_an_empty_frame_with_the_schema(start, end):
    frame = records(start, end)
    assert frame.height == 0
    assert frame.schema == schemas.FEED_RECORDS


# --- realism ---------------------------------------------------------------------------------


def test_starting_levels():
    def first_price(subject):
        end = SYNTHETIC_ORIGIN + dt.timedelta(seconds=1)
        frame = records(SYNTHETIC_ORIGIN, end, kind="tick", granularity="1s", subject=subject)
        return frame["price"].item()

    assert first_price("BTC") == pytest.approx(60_000)
    assert first_price("BTCUSDT") == pytest.approx(60_000)
    assert first_price("ETH") == pytest.approx(3_000)
    others = [first_price(subject) for subject in ("SOL", "DOGE", "XRP", "token-42")]
    assert all(1 <= price <= 500 for price in others)
    assert len(set(others)) == len(others)


@pytest.mark.parametrize(("subject", "seed"), [("BTC", 7), ("ETH", 3), ("SOL", 11)])
def test_volatility_clusters_while_returns_stay_uncorrelated(subject, seed):
    closes = records(at(2024, 4, 10), at(2024, 4, 12), subject=subject, seed=seed)["close"]
    returns = log_returns(closes)
    assert autocorrelation(np.abs(returns)) > 0.05
    assert abs(autocorrelation(returns)) < 0.1


def test_volatility_clusters_across_days():
    closes = records(at(2024, 2, 1), at(2024, 4, 1), granularity="5m", seed=0)["close"].to_numpy()
    per_day = np.diff(np.log(closes), prepend=np.log(closes[0])).reshape(-1, 288)[:, 1:]
    daily_log_vol = np.log(per_day.std(axis=1))
    assert autocorrelation(daily_log_vol) > 0.3  # independent days would sit near zero


@pytest.mark.parametrize(("subject", "seed"), [("BTC", 7), ("ETH", 3), ("SOL", 11), ("BTC", 12345)])
def test_annualised_volatility_is_realistic(subject, seed):
    closes = records(at(2025, 1, 20), at(2025, 1, 23), subject=subject, seed=seed)["close"]
    annualised = np.std(log_returns(closes)) * math.sqrt(365 * 24 * 60)
    assert 0.30 <= annualised <= 1.20


def test_volume_rises_with_the_size_of_the_move():
    frame = records(at(2024, 4, 10), at(2024, 4, 12))
    moves = np.abs(log_returns(frame["close"]))
    volumes = frame["volume"].to_numpy()[1:]
    assert np.corrcoef(moves, np.log(volumes))[0, 1] > 0.2


# --- errors ----------------------------------------------------------------------------------


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        records(at(2024, 6, 1), at(2024, 6, 2), kind="trade")


@pytest.mark.parametrize("granularity", ["7m", "2d", "1w", "", "m1", "0s"])
def test_unsupported_granularity_is_refused(granularity):
    with pytest.raises(ValueError, match="granularity"):
        records(at(2024, 6, 1), at(2024, 6, 2), granularity=granularity)


def test_malformed_granularity_raises_granularity_error():
    with pytest.raises(GranularityError):
        records(at(2024, 6, 1), at(2024, 6, 2), granularity="minute")


@pytest.mark.parametrize("granularity", ["1s", "15s", "1m", "5m", "15m", "1h", "4h", "1d"])
def test_every_day_dividing_granularity_is_supported(granularity):
    frame = records(at(2024, 6, 1), at(2024, 6, 1, 4), granularity=granularity)
    step = granularity_seconds(granularity)
    assert frame.height == max(1, 4 * 3600 // step)
    assert all(int(ts.timestamp()) % step == 0 for ts in frame["ts_event"].to_list())


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (at(2023, 12, 31, 23), at(2024, 1, 1, 1)),
        (SYNTHETIC_ORIGIN - dt.timedelta(microseconds=1), SYNTHETIC_ORIGIN + DAY),
        (at(2020, 1, 1), at(2020, 1, 2)),
    ],
)
def test_timestamps_before_the_origin_are_refused(start, end):
    with pytest.raises(ValueError, match="origin"):
        records(start, end)


def test_origin_itself_is_served():
    frame = records(SYNTHETIC_ORIGIN, SYNTHETIC_ORIGIN + dt.timedelta(minutes=3))
    assert frame["ts_event"][0] == SYNTHETIC_ORIGIN


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone"):
        records(dt.datetime(2024, 6, 1), dt.datetime(2024, 6, 2))
