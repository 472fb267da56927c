"""Synthetic market feed: the offline default data source.

This module owns the deterministic price/volume generator and the shaping of its output into
FEED_RECORDS frames (candles and ticks). It knows nothing about Dagster, the lake or any exchange;
anything that schedules, stores or compares feeds belongs elsewhere.

Model, in short: every (seed, subject) has a 1-second log-price path built from
  * a daily anchor log-price (a driftless random walk, one draw per day) whose per-day volatility
    follows a mean-reverting AR(1) in log-vol, so calm and stormy days come in runs;
  * inside each day, normal shocks scaled by a minute-level log-AR(1) volatility multiplier (and a
    mild intraday seasonality), bent into a Brownian bridge from that day's anchor to the next one.
Candles and ticks are read off that path, so every granularity is a view of the same prices.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import numbers
import threading

import numpy as np
import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.feeds.granularity import granularity_seconds

SYNTHETIC_ORIGIN = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)

_SOURCE = "synthetic"
_KINDS = ("candle", "tick")
_DAY = 86_400
_MINUTE = 60
_MINUTES_PER_DAY = _DAY // _MINUTE
_ORIGIN_EPOCH = int(SYNTHETIC_ORIGIN.timestamp())
_SECONDS_PER_YEAR = 365 * _DAY  # crypto trades every day, so a year is 365 full days

# Known assets start at the order of magnitude of the real ones, so thresholds and plots built
# against the synthetic feed still look sane when pointed at a live feed.
_KNOWN_LEVELS = {"BTC": 60_000.0, "ETH": 3_000.0}
_KNOWN_ANNUAL_VOL = {"BTC": 0.55, "ETH": 0.70}
# Average notional traded per second, in quote currency; only relative sizes matter downstream.
_KNOWN_NOTIONAL_PER_SECOND = {"BTC": 20_000.0, "ETH": 10_000.0}
_QUOTE_SUFFIXES = ("USDT", "USDC", "BUSD", "USD", "PERP")

# Daily log-vol AR(1): persistence ~ a week, dispersion mild enough that multi-day realised vol
# stays in a believable band.
_DAILY_VOL_PHI = 0.85
_DAILY_VOL_STD = 0.20
# Minute log-vol AR(1): a half-life of ~35 minutes gives the within-day bursts that make absolute
# returns autocorrelated while raw returns stay uncorrelated.
_MINUTE_VOL_PHI = 0.98
_MINUTE_VOL_STD = 0.55
# Activity peaks around the US session (~15:00 UTC) and is lowest in the Asian late night.
_SEASONAL_AMPLITUDE = 0.25
_SEASONAL_PEAK_MINUTE = 15 * 60

_DAY_CACHE_SIZE = 64


def generate_records(
    *,
    seed: int,
    subject: str,
    kind: str,
    granularity: str,
    start: dt.datetime,
    end: dt.datetime,
) -> pl.DataFrame:
    """Synthetic FEED_RECORDS rows with `ts_event` in [start, end), aligned to `granularity`.

    Values depend only on (seed, subject, ts_event), never on the window asked for: overlapping
    windows agree row for row, and coarser candles are exact aggregations of finer ones.
    Candles carry OHLCV with price = close; ticks carry price (= close) and a trade size in volume.
    """
    if kind not in _KINDS:
        raise ValueError(f"synthetic feed: kind must be one of {list(_KINDS)}, got {kind!r}")
    step = granularity_seconds(granularity)
    if step > _DAY or _DAY % step != 0:
        raise ValueError(
            f"synthetic feed: granularity {granularity!r} ({step}s) is not supported; "
            "it must be between 1s and 1d and divide a day evenly "
            "(e.g. 1s, 1m, 5m, 15m, 1h, 4h, 1d)"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"synthetic feed: seed must be an integer, got {seed!r}")
    seed = int(seed)  # one canonical form: the seed is hashed through its decimal text
    if not isinstance(subject, str) or not subject:
        raise ValueError(f"synthetic feed: subject must be a non-empty string, got {subject!r}")
    start_us = _epoch_micros(start, "start")
    end_us = _epoch_micros(end, "end")
    if start_us >= end_us:
        return schemas.empty(schemas.FEED_RECORDS)
    if start_us < _ORIGIN_EPOCH * 1_000_000:
        raise ValueError(
            f"synthetic feed: start {start.isoformat()} is before the synthetic origin "
            f"{SYNTHETIC_ORIGIN.isoformat()}; no data exists there"
        )

    # Ceil to the grid: a record belongs to the window only if its own timestamp is inside it.
    step_us = step * 1_000_000
    first = -(-start_us // step_us) * step
    if first * 1_000_000 >= end_us:
        return schemas.empty(schemas.FEED_RECORDS)
    count = (end_us - 1 - first * 1_000_000) // step_us + 1
    stamps = first + step * np.arange(count, dtype=np.int64)

    if kind == "candle":
        columns = _candles(seed, subject, step, stamps)
    else:
        columns = _ticks(seed, subject, stamps)

    frame = pl.DataFrame(
        {"ts_event": pl.Series(stamps * 1_000_000, dtype=pl.Int64).cast(schemas.UTC_TS), **columns}
    ).with_columns(
        source=pl.lit(_SOURCE, dtype=pl.String),
        subject=pl.lit(subject, dtype=pl.String),
        kind=pl.lit(kind, dtype=pl.String),
        granularity=pl.lit(granularity, dtype=pl.String),
    )
    return schemas.conform(frame, schemas.FEED_RECORDS, "feed_records")


def _epoch_micros(value: dt.datetime, name: str) -> int:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"synthetic feed: {name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"synthetic feed: {name} must be timezone-aware (UTC), got {value!r}")
    # Integer microseconds keep sub-second bounds exact (float timestamps would round).
    delta = value - SYNTHETIC_ORIGIN
    return (_ORIGIN_EPOCH + delta.days * _DAY + delta.seconds) * 1_000_000 + delta.microseconds


def _candles(seed: int, subject: str, step: int, stamps: np.ndarray) -> dict[str, pl.Series]:
    n = len(stamps)
    opens = np.empty(n)
    highs = np.empty(n)
    lows = np.empty(n)
    closes = np.empty(n)
    volumes = np.empty(n)
    days = (stamps - _ORIGIN_EPOCH) // _DAY
    # Candles never straddle midnight (step divides a day), so each day is aggregated on its own.
    for day, lo, hi in _runs(days):
        prices, vols = _day_path(seed, subject, int(day))
        per_day = _DAY // step
        grid_p = prices.reshape(per_day, step)
        grid_v = vols.reshape(per_day, step)
        index = (stamps[lo:hi] - _ORIGIN_EPOCH - int(day) * _DAY) // step
        rows_p = grid_p[index]
        opens[lo:hi] = rows_p[:, 0]
        closes[lo:hi] = rows_p[:, -1]
        highs[lo:hi] = rows_p.max(axis=1)
        lows[lo:hi] = rows_p.min(axis=1)
        volumes[lo:hi] = grid_v[index].sum(axis=1)
    return {
        "open": pl.Series(opens),
        "high": pl.Series(highs),
        "low": pl.Series(lows),
        "close": pl.Series(closes),
        "volume": pl.Series(volumes),
        "price": pl.Series(closes),
    }


def _ticks(seed: int, subject: str, stamps: np.ndarray) -> dict[str, pl.Series]:
    n = len(stamps)
    prices = np.empty(n)
    sizes = np.empty(n)
    days = (stamps - _ORIGIN_EPOCH) // _DAY
    for day, lo, hi in _runs(days):
        path, vols = _day_path(seed, subject, int(day))
        second = stamps[lo:hi] - _ORIGIN_EPOCH - int(day) * _DAY
        prices[lo:hi] = path[second]
        sizes[lo:hi] = vols[second]
    nulls = pl.Series(np.full(n, np.nan)).fill_nan(None)
    return {
        "open": nulls,
        "high": nulls,
        "low": nulls,
        "close": pl.Series(prices),
        "volume": pl.Series(sizes),
        "price": pl.Series(prices),
    }


def _runs(days: np.ndarray) -> list[tuple[int, int, int]]:
    """(day, lo, hi) for each run of equal day indices in the sorted `days`."""
    if len(days) == 0:
        return []
    cuts = np.flatnonzero(np.diff(days)) + 1
    bounds = np.concatenate(([0], cuts, [len(days)]))
    return [(int(days[lo]), int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _rng(seed: int, subject: str, day: int, stream: str) -> np.random.Generator:
    # A keyed hash per (seed, subject, day, stream) makes every day independently addressable:
    # no generator state has to be carried from the origin to reach a given day.
    digest = hashlib.blake2b(
        f"{seed}\x1f{subject}\x1f{day}\x1f{stream}".encode(), digest_size=16
    ).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _unit_hash(seed: int, subject: str, label: str) -> float:
    """A deterministic number in [0, 1) for per-subject constants."""
    digest = hashlib.blake2b(f"{seed}\x1f{subject}\x1f{label}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def _base_asset(subject: str) -> str:
    """`BTCUSDT`, `btc/usdt`, `BTC-PERP` → `BTC`, so known levels apply to exchange spellings."""
    head = subject.upper()
    for sep in ("/", "-", "_", ":"):
        head = head.split(sep)[0]
    for suffix in _QUOTE_SUFFIXES:
        if head.endswith(suffix) and len(head) > len(suffix):
            return head[: -len(suffix)]
    return head


class _SubjectProfile:
    """Per (seed, subject) constants plus the lazily extended daily anchor/vol series."""

    def __init__(self, seed: int, subject: str) -> None:
        self.seed = seed
        self.subject = subject
        base = _base_asset(subject)
        # Levels are per subject, not per seed, so every seed's BTC still looks like BTC.
        if base in _KNOWN_LEVELS:
            level = _KNOWN_LEVELS[base]
            annual_vol = _KNOWN_ANNUAL_VOL[base]
            notional = _KNOWN_NOTIONAL_PER_SECOND[base]
        else:
            # Log-uniform over 1 .. 500: penny tokens and mid caps are equally likely.
            level = math.exp(math.log(500.0) * _unit_hash(0, base, "level"))
            annual_vol = 0.50 + 0.30 * _unit_hash(0, base, "vol")
            notional = math.exp(math.log(200.0) + math.log(25.0) * _unit_hash(0, base, "notional"))
        self.sigma_second = annual_vol / math.sqrt(_SECONDS_PER_YEAR)
        self.log_notional = math.log(notional)
        self._lock = threading.Lock()
        # anchors[d] is the log-price at 00:00:00 of day d; sigmas[d] the per-second vol of day d.
        self._anchors = [math.log(level)]
        self._sigmas: list[float] = []
        self._log_vol = 0.0

    def day(self, day: int) -> tuple[float, float, float]:
        """(anchor at day start, anchor at next day start, per-second sigma) for `day`."""
        with self._lock:
            # Extending is a cheap O(days) scan done once; afterwards lookups are O(1).
            while len(self._sigmas) <= day:
                d = len(self._sigmas)
                z_price, z_vol = _rng(self.seed, self.subject, d, "daily").standard_normal(2)
                if d == 0:
                    self._log_vol = _DAILY_VOL_STD * z_vol
                else:
                    self._log_vol = _DAILY_VOL_PHI * self._log_vol + math.sqrt(
                        1.0 - _DAILY_VOL_PHI**2
                    ) * _DAILY_VOL_STD * z_vol
                # exp(h - s^2) keeps E[sigma^2] at the subject's nominal level.
                sigma = self.sigma_second * math.exp(self._log_vol - _DAILY_VOL_STD**2)
                self._sigmas.append(sigma)
                self._anchors.append(self._anchors[-1] + sigma * math.sqrt(_DAY) * z_price)
            return self._anchors[day], self._anchors[day + 1], self._sigmas[day]


@functools.lru_cache(maxsize=256)
def _profile(seed: int, subject: str) -> _SubjectProfile:
    return _SubjectProfile(seed, subject)


_SEASONAL = 1.0 + _SEASONAL_AMPLITUDE * np.cos(
    2.0 * np.pi * (np.arange(_MINUTES_PER_DAY) - _SEASONAL_PEAK_MINUTE) / _MINUTES_PER_DAY
)


@functools.lru_cache(maxsize=_DAY_CACHE_SIZE)
def _day_path(seed: int, subject: str, day: int) -> tuple[np.ndarray, np.ndarray]:
    """Prices and per-second volumes for the 86,400 seconds of `day` (read-only arrays)."""
    if day < 0:
        raise ValueError(f"synthetic feed: day {day} is before the synthetic origin")
    profile = _profile(seed, subject)
    anchor, next_anchor, sigma = profile.day(day)
    rng = _rng(seed, subject, day, "intraday")

    # Minute log-vol AR(1), started from its stationary law so each day begins in a typical state.
    innovations = rng.standard_normal(_MINUTES_PER_DAY) * _MINUTE_VOL_STD
    scale = math.sqrt(1.0 - _MINUTE_VOL_PHI**2)
    log_mult = np.empty(_MINUTES_PER_DAY)
    state = float(innovations[0])
    log_mult[0] = state
    for i, shock in enumerate(innovations[1:].tolist(), start=1):
        state = _MINUTE_VOL_PHI * state + scale * shock
        log_mult[i] = state
    multiplier = np.exp(log_mult) * _SEASONAL
    # Normalising the day's mean variance to 1 makes the intraday path's total variance equal the
    # anchor step's, so the bridge below only nudges the path instead of dragging it.
    multiplier /= np.sqrt(np.mean(multiplier**2))

    shocks = rng.standard_normal(_DAY)
    per_second_sigma = np.repeat(sigma * multiplier, _MINUTE)
    increments = per_second_sigma * shocks
    walk = np.concatenate(([0.0], np.cumsum(increments)))  # walk[t]: log move from 00:00:00 to t
    variance = np.concatenate(([0.0], np.cumsum(per_second_sigma**2)))
    # Brownian bridge with variance time: the endpoint correction is spread in proportion to how
    # much randomness has elapsed, so quiet stretches are not given an artificial drift.
    gap = walk[-1] - (next_anchor - anchor)
    log_path = anchor + walk[:-1] - gap * (variance[:-1] / variance[-1])
    prices = np.exp(log_path)

    # Trade activity rises with the prevailing volatility and with the size of the move itself.
    noise = rng.standard_normal(_DAY)
    log_volume = (
        profile.log_notional
        - log_path
        + 0.8 * np.log(per_second_sigma / profile.sigma_second)
        + 0.5 * (np.abs(shocks) - math.sqrt(2.0 / math.pi))
        + 0.6 * noise
        - 0.18  # -0.6^2/2 offsets the lognormal noise's mean, keeping notional near nominal
    )
    volumes = np.exp(log_volume)

    prices.setflags(write=False)
    volumes.setflags(write=False)
    return prices, volumes
