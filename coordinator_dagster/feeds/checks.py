"""Data-quality rules for feed records and round inputs, as plain functions over polars frames.

Each rule returns a `CheckOutcome` (see `checks.py`); the `feed_records` and `inputs` assets emit
them as Dagster asset checks with the data, and the score sensor re-evaluates the blocking ones on
the lake before it lets a window be scored. Nothing here knows about Dagster, sources or the lake.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from coordinator_dagster.checks import CheckOutcome

NO_DUPLICATES = "feed_no_duplicate_records"
MONOTONIC = "feed_timestamps_monotonic"
NO_GAPS = "feed_no_gaps"
FRESH = "feed_fresh"
NOT_FROZEN = "feed_price_not_frozen"
POSITIVE = "feed_prices_positive"

# What guards scoring: a window failing one of these is not scored until the data is fixed.
BLOCKING = (NO_DUPLICATES, MONOTONIC, NO_GAPS, NOT_FROZEN, POSITIVE)
ALL_FEED_CHECKS = (*BLOCKING, FRESH)
# The rules that still mean something on data read back from the lake (which is stored sorted
# and unique, so order and duplicates can only be judged on what the source delivered).
LAKE_RULES = (NO_DUPLICATES, NO_GAPS, NOT_FROZEN, POSITIVE)

INPUTS_UNIQUE = "inputs_unique_per_round"
INPUTS_FINITE = "inputs_window_prices_positive"

_EXAMPLES = 5


@dataclass(frozen=True)
class FeedCheckConfig:
    """Tolerances; the defaults suit one-minute candles of liquid pairs (`for_step` scales them)."""

    max_gap_steps: int = 1  # consecutive records at most this many steps apart (1: nothing missing)
    frozen_records: int = 30  # this many consecutive identical prices means a frozen feed
    freshness_seconds: int = 180  # newest record of a live window at most this old

    @classmethod
    def for_step(cls, step_seconds: int, max_gap_steps: int | None = None, frozen_records: int | None = None, freshness_seconds: int = 180) -> FeedCheckConfig:
        """The tolerances for a feed of `step_seconds`, each given one winning over its default.

        The defaults are durations, so they mean the same at every granularity: a hole of up to
        `GAP_TOLERANCE` and a price unchanged for less than `FROZEN_AFTER` pass. At one minute and
        coarser that is 1 step and 30 records, as before; at one second a real tick stream (Pyth
        skips seconds, liquid pairs repeat a price for many seconds) needs 10 steps and 1,800.
        >>> FeedCheckConfig.for_step(1)
        FeedCheckConfig(max_gap_steps=10, frozen_records=1800, freshness_seconds=180)
        >>> FeedCheckConfig.for_step(60), FeedCheckConfig.for_step(300).frozen_records
        (FeedCheckConfig(max_gap_steps=1, frozen_records=30, freshness_seconds=180), 30)
        """
        gap = max_gap_steps if max_gap_steps is not None else max(1, -(-GAP_TOLERANCE_SECONDS // step_seconds))
        frozen = frozen_records if frozen_records is not None else max(MIN_FROZEN_RECORDS, -(-FROZEN_AFTER_SECONDS // step_seconds))
        return cls(gap, frozen, freshness_seconds)


# The duration-based defaults of `FeedCheckConfig.for_step`.
GAP_TOLERANCE_SECONDS = 10
FROZEN_AFTER_SECONDS = 30 * 60
MIN_FROZEN_RECORDS = 30


def _stamp(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def no_duplicates(records: pl.DataFrame) -> CheckOutcome:
    dups = records.group_by("subject", "ts_event").len().filter(pl.col("len") > 1).sort("ts_event", "subject")
    return CheckOutcome(
        NO_DUPLICATES,
        dups.is_empty(),
        "no two records share (subject, ts_event)",
        {"duplicates": dups.height, "examples": [f"{s}@{_stamp(t)}" for s, t, _ in dups.head(_EXAMPLES).iter_rows()]},
    )


def monotonic(records: pl.DataFrame) -> CheckOutcome:
    """ts_event strictly increases per subject in the order the source delivered the records."""
    back = records.with_columns(prev=pl.col("ts_event").shift(1).over("subject")).filter(pl.col("ts_event") <= pl.col("prev"))
    return CheckOutcome(
        MONOTONIC,
        back.is_empty(),
        "timestamps strictly increase per subject, in delivery order",
        {"out_of_order": back.height, "examples": [f"{s}@{_stamp(t)}" for s, t in back.select("subject", "ts_event").head(_EXAMPLES).iter_rows()]},
    )


def find_gaps(
    records: pl.DataFrame, subjects: list[str], start: dt.datetime, end: dt.datetime, step_seconds: int, max_gap_steps: int = 1
) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """(subject, first missing ts, first ts present again) for every run of missing records in
    [start, end) longer than the tolerance; `end` is exclusive, so a window ending at
    floor(now) is judged only on closed steps."""
    step = dt.timedelta(seconds=step_seconds)
    allowed = step * max_gap_steps
    gaps = []
    for subject in subjects:
        stamps = records.filter(pl.col("subject") == subject)["ts_event"].unique().sort().to_list()
        # Sentinels one step outside the window, so leading and trailing gaps count like inner ones.
        points = [start - step, *stamps, end]
        for before, after in zip(points, points[1:]):
            if after - before > allowed:
                gaps.append((subject, before + step, after))
    return gaps


def no_gaps(
    records: pl.DataFrame, subjects: list[str], start: dt.datetime, end: dt.datetime, step_seconds: int, max_gap_steps: int = 1
) -> CheckOutcome:
    gaps = [] if end <= start else find_gaps(records, subjects, start, end, step_seconds, max_gap_steps)
    missing = sum(int((b - a).total_seconds()) // step_seconds for _, a, b in gaps)
    return CheckOutcome(
        NO_GAPS,
        not gaps,
        f"no run of missing records longer than {max_gap_steps} step(s) of {step_seconds} s in [{_stamp(start)}, {_stamp(end)})",
        {
            "gaps": len(gaps),
            "missing_records": missing,
            "examples": [f"{s} {_stamp(a)}..{_stamp(b)}" for s, a, b in gaps[:_EXAMPLES]],
        },
    )


def fresh(records: pl.DataFrame, subjects: list[str], now: dt.datetime, freshness_seconds: int) -> CheckOutcome:
    """Every subject's newest record is at most `freshness_seconds` old (judge live windows only)."""
    newest = dict(records.group_by("subject").agg(pl.col("ts_event").max()).iter_rows())
    stale = {}
    for subject in subjects:
        ts = newest.get(subject)
        age = None if ts is None else (now - ts).total_seconds()
        if age is None or age > freshness_seconds:
            stale[subject] = "no record" if age is None else f"{age:.0f} s old"
    return CheckOutcome(
        FRESH,
        not stale,
        f"every subject's newest record is at most {freshness_seconds} s old",
        {"stale": ", ".join(f"{k}: {v}" for k, v in stale.items()) or "none"},
    )


def not_frozen(records: pl.DataFrame, frozen_records: int, since: dt.datetime | None = None) -> CheckOutcome:
    """No subject repeats the same close price for `frozen_records` consecutive records (with
    `since`: only runs reaching `since` or later count, so earlier records serve as look-back)."""
    runs = (
        records.sort("subject", "ts_event")
        .with_columns(run=(pl.col("close") != pl.col("close").shift(1)).fill_null(True).cum_sum().over("subject"))
        .group_by("subject", "run")
        .agg(pl.len().alias("length"), pl.col("ts_event").min().alias("since"), pl.col("ts_event").max().alias("until"), pl.col("close").first())
        .filter((pl.col("length") >= frozen_records) & (pl.col("until") >= since if since is not None else pl.lit(True)))
        .sort("since")
    )
    return CheckOutcome(
        NOT_FROZEN,
        runs.is_empty(),
        f"no subject repeats the same price for {frozen_records} consecutive records",
        {
            "frozen_runs": runs.height,
            "examples": [f"{s} {c} x{n} since {_stamp(t)}" for s, n, t, c in runs.select("subject", "length", "since", "close").head(_EXAMPLES).iter_rows()],
        },
    )


def _bad_price(column: str) -> pl.Expr:
    value = pl.col(column)
    return value.is_null() | value.is_nan() | (value <= 0)


def positive_prices(records: pl.DataFrame) -> CheckOutcome:
    """close (and open/high/low for candles) are present, finite and above zero."""
    bad_candle = (pl.col("kind") == "candle") & (_bad_price("open") | _bad_price("high") | _bad_price("low"))
    bad = records.filter(_bad_price("close") | bad_candle)
    return CheckOutcome(
        POSITIVE,
        bad.is_empty(),
        "every price is present, finite and above zero",
        {"bad_records": bad.height, "examples": [f"{s}@{_stamp(t)}" for s, t in bad.select("subject", "ts_event").head(_EXAMPLES).iter_rows()]},
    )


def feed_outcomes(
    delivered: pl.DataFrame,
    subjects: list[str],
    start: dt.datetime,
    end: dt.datetime,
    step_seconds: int,
    now: dt.datetime,
    config: FeedCheckConfig,
    live: bool,
) -> list[CheckOutcome]:
    """Every feed check over the records a source delivered for [start, end)."""
    freshness = (
        fresh(delivered, subjects, now, config.freshness_seconds)
        if live
        else CheckOutcome(FRESH, True, "historical window: freshness applies to live windows only", {"stale": "not applicable"})
    )
    return [
        no_duplicates(delivered),
        monotonic(delivered),
        no_gaps(delivered, subjects, start, end, step_seconds, config.max_gap_steps),
        freshness,
        not_frozen(delivered, config.frozen_records),
        positive_prices(delivered),
    ]


def lake_failures(
    records: pl.DataFrame,
    subjects: list[str],
    start: dt.datetime,
    end: dt.datetime,
    step_seconds: int,
    config: FeedCheckConfig,
    rules: tuple[str, ...] = LAKE_RULES,
) -> list[CheckOutcome]:
    """The `rules` that fail on stored records of [start, end) (empty: safe to score).

    `records` may begin earlier than `start`: that look-back lets a price frozen since before the
    window count, while duplicates, gaps and bad prices are judged inside the window only."""
    lookback, records = records, records.filter(pl.col("ts_event") >= start)
    outcomes = []
    if NO_DUPLICATES in rules:
        outcomes.append(no_duplicates(records))
    if NO_GAPS in rules:
        outcomes.append(no_gaps(records, subjects, start, end, step_seconds, config.max_gap_steps))
    if NOT_FROZEN in rules:
        outcomes.append(not_frozen(lookback, config.frozen_records, since=start))
    if POSITIVE in rules:
        outcomes.append(positive_prices(records))
    return [o for o in outcomes if not o.passed]


def inputs_outcomes(inputs: pl.DataFrame) -> list[CheckOutcome]:
    dups = inputs.group_by("scope_key", "round_ts").len().filter(pl.col("len") > 1)
    bad = inputs.filter(
        pl.col("window_close").list.eval((pl.element().is_null() | pl.element().is_nan() | (pl.element() <= 0)).any()).list.first().fill_null(False)
    )
    return [
        CheckOutcome(INPUTS_UNIQUE, dups.is_empty(), "one input per scope and round", {"duplicates": dups.height}),
        CheckOutcome(
            INPUTS_FINITE,
            bad.is_empty(),
            "every price handed to models is present, finite and above zero",
            {"bad_inputs": bad.height, "examples": bad["input_id"].head(_EXAMPLES).to_list()},
        ),
    ]
