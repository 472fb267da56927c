"""Prediction rounds: when they fall, and the model-facing input of each round.

A round of a scheduled prediction falls on every multiple of its interval (Unix time). Its
input holds the records that closed within the input window, a time span ending at the round
time (a candle with open time t closes at t + granularity), so models never see data from after
the round. Each record keeps all its fields (candles: open, high, low, close, volume).

What models are handed (`raw_input`) is our `RawInput` shape by default. A contract's input
builder (`input_builder`, or `INFERENCE_INPUT_BUILDER`) replaces it: called with the window's
feed records as a polars frame, it returns the model input, stored with the round
(`model_input`) and handed to models under the payload's `input` key.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel

from coordinator_dagster.lake import schemas
from coordinator_dagster.domain_types import ScheduledPrediction
from coordinator_dagster.models.reference_models import BUILT_INPUT_KEY


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


# The record fields a round's window keeps, as (feed_records column, inputs column).
WINDOW_FIELDS = (("open", "window_open"), ("high", "window_high"), ("low", "window_low"), ("px", "window_close"), ("volume", "window_volume"))


class InputBuilderError(ValueError):
    """The contract's input builder failed or returned something models cannot be handed."""


def encode_model_input(built: Any, input_type: type[BaseModel] | None, where: str) -> str:
    """The builder's output as JSON: validated through `input_type` when given, else a mapping
    (or a pydantic model) of JSON values."""
    try:
        if input_type is not None:
            built = input_type.model_validate(built)
        if isinstance(built, BaseModel):
            built = built.model_dump(mode="json")
        if not isinstance(built, Mapping):
            raise TypeError(f"returned {type(built).__name__}, not a mapping")
        # numpy scalars are common in features; anything else not JSON-able is refused. NaN is
        # kept (a feature undefined at the window's start): the runner protocol carries it.
        return json.dumps(built, default=_json_scalar)
    except (TypeError, ValueError) as exc:
        raise InputBuilderError(f"input builder, {where}: {exc}") from exc


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def build_inputs(
    feed: pl.DataFrame,
    schedule: list[ScheduledPrediction],
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    granularity_seconds: int,
    window_seconds: int,
    builder: Callable[[pl.DataFrame], Any] | None = None,
    input_type: type[BaseModel] | None = None,
) -> pl.DataFrame:
    """One row per (scheduled prediction, round) in [start, min(end, now)] whose data is present.

    A round is present when the record that closes exactly at the round time exists; a round
    inside a feed gap gets no input (and so no predictions) rather than a stale window. The window
    holds the records that closed in (round − window_seconds, round]: at most
    window_seconds / granularity of them, fewer where the feed has gaps. With a `builder`, each
    round's model input is `builder(window records)`, validated through `input_type` if given.
    """
    step = dt.timedelta(seconds=granularity_seconds)
    span = dt.timedelta(seconds=window_seconds)
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
        # Rounds up to `now` inclusive: the round at `now` is due as soon as its data is in.
        upper = min(end, now + dt.timedelta(microseconds=1))
        for round_ts in round_times(start, upper, scheduled.prediction_interval_seconds):
            newest_open = np.datetime64((round_ts - step).replace(tzinfo=None), "us")
            last = int(np.searchsorted(ts, newest_open, side="right")) - 1
            if last < 0 or ts[last] != newest_open:
                continue
            oldest_open = np.datetime64((round_ts - span).replace(tzinfo=None), "us")
            first = min(int(np.searchsorted(ts, oldest_open, side="left")), last)
            window = records.slice(first, last - first + 1)
            model_input = None
            if builder is not None:
                where = f"{scheduled.scope_key} at {round_stamp(round_ts)}"
                try:
                    built = builder(window.drop("px"))
                except Exception as exc:
                    raise InputBuilderError(f"input builder, {where}: raised {exc!r}") from exc
                model_input = encode_model_input(built, input_type, where)
            rows.append(
                {
                    "input_id": input_id(scheduled.scope_key, round_ts),
                    "scope_key": scheduled.scope_key,
                    "subject": subject,
                    "round_ts": round_ts,
                    "resolvable_at": round_ts + dt.timedelta(seconds=scheduled.resolve_horizon_seconds),
                    "step_seconds": scheduled.scope.step_seconds,
                    "horizon_seconds": scheduled.scope.horizon_seconds,
                    "window_ts": window["ts_event"].to_list(),
                    **{name: window[column].to_list() for column, name in WINDOW_FIELDS},
                    "record_count": window.height,
                    "last_record_ts": records["ts_event"][last],
                    "model_input": model_input,
                }
            )
    if not rows:
        return schemas.empty(schemas.INPUTS)
    frame = pl.DataFrame(rows, schema=schemas.INPUTS)
    return schemas.conform(frame, schemas.INPUTS, "inputs").sort("round_ts", "scope_key")


def raw_input(row: dict) -> dict:
    """The JSON-able payload models receive for one input row.

    By default our `RawInput` shape, each candle with every field the feed recorded (a field a
    row from before the inputs carried it, or a feed without it, reads as None). A round whose
    input was built by the contract's input builder carries that input under `input` instead of
    the candles.
    """
    payload = {
        "subject": row["subject"],
        "round_ts": row["round_ts"].isoformat(),
        "step_seconds": row["step_seconds"],
        "horizon_seconds": row["horizon_seconds"],
    }
    if row.get("model_input") is not None:
        payload[BUILT_INPUT_KEY] = json.loads(row["model_input"])
        return payload
    count = len(row["window_ts"])
    fields = {name: row.get(name) or [None] * count for _, name in WINDOW_FIELDS}
    payload["candles"] = [
        {
            "ts": ts.isoformat(),
            "open": fields["window_open"][i],
            "high": fields["window_high"][i],
            "low": fields["window_low"][i],
            "close": fields["window_close"][i],
            "volume": fields["window_volume"][i],
        }
        for i, ts in enumerate(row["window_ts"])
    ]
    return payload
