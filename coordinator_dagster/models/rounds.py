"""Prediction rounds: when they fall, and the model-facing input of each round.

A round of a scheduled prediction falls on every multiple of its interval (Unix time). Its
input holds the newest `window_size` records that had closed by the round time (a candle with
open time t closes at t + granularity), so models never see data from after the round.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.domain_types import ScheduledPrediction


# Run tag set by the predict sensor on live runs: the round the run was requested for.
LIVE_ROUND_TAG = "coordinator/round"
# How a round's time is written wherever it names the round: that tag, run keys, sensor cursors
# and input ids (`btc-60s@2026-11-20T10:20:00Z`).
ROUND_STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def round_stamp(round_ts: dt.datetime) -> str:
    return round_ts.strftime(ROUND_STAMP_FORMAT)


def parse_round_stamp(stamp: str) -> dt.datetime:
    ts = dt.datetime.fromisoformat(stamp)
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.timezone.utc)


def split_missed(todo: pl.DataFrame, live_round: dt.datetime, intervals: dict[str, int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rounds to ask the models, rounds missed) for a live run requested for `live_round`.

    A round more than one interval older than the live round was not predicted in its time (the
    node was down, or started mid-hour). Asking models now would hand them a stale round as if
    it were live, so it is recorded as missed instead; replays (no live round) predict everything.
    """
    interval = pl.col("scope_key").replace_strict(intervals, default=0, return_dtype=pl.Int64)
    cutoff = pl.lit(live_round) - pl.duration(seconds=interval)
    missed = pl.col("round_ts") < cutoff
    return todo.filter(~missed), todo.filter(missed)


def round_times(start: dt.datetime, end: dt.datetime, interval_seconds: int) -> list[dt.datetime]:
    """Round times in [start, end): multiples of the interval since the Unix epoch."""
    first = math.ceil(start.timestamp() / interval_seconds) * interval_seconds
    end_ts = end.timestamp()
    return [dt.datetime.fromtimestamp(t, tz=dt.timezone.utc) for t in range(first, math.ceil(end_ts), interval_seconds) if t < end_ts]


def input_id(scope_key: str, round_ts: dt.datetime) -> str:
    return f"{scope_key}@{round_stamp(round_ts)}"


def build_inputs(
    feed: pl.DataFrame,
    schedule: list[ScheduledPrediction],
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    granularity_seconds: int,
    window_size: int,
) -> pl.DataFrame:
    """One row per (scheduled prediction, round) in [start, min(end, now)] whose data is present.

    A round is present when the record that closes exactly at the round time exists; a round
    inside a feed gap gets no input (and so no predictions) rather than a stale window.
    """
    step = dt.timedelta(seconds=granularity_seconds)
    rows = []
    for scheduled in schedule:
        if not scheduled.active:
            continue
        subject = scheduled.scope.subject
        records = (
            feed.filter(pl.col("subject") == subject)
            .sort("ts_event")
            .unique("ts_event", keep="last", maintain_order=True)
            .with_columns(pl.coalesce("close", "price").alias("px"))
        )
        ts = records["ts_event"].dt.replace_time_zone(None).to_numpy()
        closes = records["px"].to_numpy()
        # Rounds up to `now` inclusive: the round at `now` is due as soon as its data is in.
        upper = min(end, now + dt.timedelta(microseconds=1))
        for round_ts in round_times(start, upper, scheduled.prediction_interval_seconds):
            newest_open = np.datetime64((round_ts - step).replace(tzinfo=None), "us")
            last = int(np.searchsorted(ts, newest_open, side="right")) - 1
            if last < 0 or ts[last] != newest_open:
                continue
            first = max(0, last - window_size + 1)
            rows.append(
                {
                    "input_id": input_id(scheduled.scope_key, round_ts),
                    "scope_key": scheduled.scope_key,
                    "subject": subject,
                    "round_ts": round_ts,
                    "resolvable_at": round_ts + dt.timedelta(seconds=scheduled.resolve_horizon_seconds),
                    "step_seconds": scheduled.scope.step_seconds,
                    "horizon_seconds": scheduled.scope.horizon_seconds,
                    "window_ts": records["ts_event"][first : last + 1].to_list(),
                    "window_close": closes[first : last + 1].tolist(),
                    "record_count": last - first + 1,
                    "last_record_ts": records["ts_event"][last],
                }
            )
    if not rows:
        return schemas.empty(schemas.INPUTS)
    frame = pl.DataFrame(rows, schema=schemas.INPUTS)
    return schemas.conform(frame, schemas.INPUTS, "inputs").sort("round_ts", "scope_key")


def raw_input(row: dict) -> dict:
    """The JSON-able payload models receive for one input row (shape of `RawInput`)."""
    return {
        "subject": row["subject"],
        "round_ts": row["round_ts"].isoformat(),
        "step_seconds": row["step_seconds"],
        "horizon_seconds": row["horizon_seconds"],
        "candles": [
            {"ts": ts.isoformat(), "close": close}
            for ts, close in zip(row["window_ts"], row["window_close"], strict=True)
        ],
    }
