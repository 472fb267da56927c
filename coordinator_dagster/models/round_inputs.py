"""The inputs of the rounds in a time span, read from the lake's feed records: what the `inputs`
asset writes for an hour window and what the round engine builds for one live round (one code
path, so a round's input is the same whichever of them recorded it)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.domain_types import ScheduledPrediction
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.rounds import build_inputs


def span_inputs(
    store: Lake,
    contract: CrunchContract,
    step_seconds: int,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    schedule: list[ScheduledPrediction] | None = None,
) -> pl.DataFrame:
    """One row per round in [start, end) (up to `now`) of `schedule` (default: the contract's),
    built from the feed records that closed within each round's input window."""
    span = contract.input_window_span(step_seconds)
    lookback = dt.timedelta(seconds=span + step_seconds)
    records = store.read_window("feed_records", start - lookback, end)
    return build_inputs(
        records,
        contract.scheduled_predictions if schedule is None else schedule,
        start,
        end,
        now,
        step_seconds,
        span,
        builder=contract.input_builder,
        input_type=contract.builder_output_type,
    )
