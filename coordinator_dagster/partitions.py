"""Every PartitionsDefinition of the project, defined once, plus key ↔ time helpers.

Pipeline assets share hourly windows: a year is ~8,800 keys (Dagster lists and backfills these
quickly; one-minute keys for a year would be 526k and stall the UI), and minute rounds live as
rows inside an hour. `end_offset=1` makes the hour in progress a valid key, so live rounds land
in their own hour as it fills. Checkpoints use the contract's checkpoint period.

Every definition starts where the node's data starts (`PARTITIONS_START`; `make run` remembers
the day a home first ran, the demo uses its own window), so the UI shows no empty history as
never-materialized partitions. The module-level definitions start on `DEFAULT_START`, the
embedded example's first day; the asset modules declare those, and `build_defs` moves them to the
node's start with `starting_at`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import dagster as dg

DEFAULT_START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
WINDOW_KEY_FORMAT = "%Y-%m-%d-%H:%M"
PERIOD_KEY_FORMAT = "%Y-%m-%d"


def window_partitions(start: dt.datetime) -> dg.HourlyPartitionsDefinition:
    """Hourly windows from the hour holding `start`, including the hour in progress."""
    return dg.HourlyPartitionsDefinition(start_date=window_key(start), end_offset=1)


def checkpoint_partitions(period: str, start: dt.datetime) -> dg.TimeWindowPartitionsDefinition:
    """`period` ("weekly": Sunday 00:00 UTC to Sunday, Dagster's default; "daily") partitions
    whose first period holds `start`, so the period in which the data starts has its checkpoint."""
    if period not in CHECKPOINT_PARTITIONS:
        raise ValueError(f"unknown checkpoint period {period!r}; expected one of {sorted(CHECKPOINT_PARTITIONS)}")
    if window_key(start) == window_key(DEFAULT_START):
        return CHECKPOINT_PARTITIONS[period]
    day = start.astimezone(dt.timezone.utc).date()
    if period == "weekly":
        sunday = day - dt.timedelta(days=(day.weekday() + 1) % 7)
        return dg.WeeklyPartitionsDefinition(start_date=sunday.strftime(PERIOD_KEY_FORMAT))
    return dg.DailyPartitionsDefinition(start_date=day.strftime(PERIOD_KEY_FORMAT))


def window_key(ts: dt.datetime) -> str:
    """The hourly partition key holding `ts`."""
    return ts.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0).strftime(WINDOW_KEY_FORMAT)


WINDOW_PARTITIONS = window_partitions(DEFAULT_START)
# Weekly periods start on Sunday 00:00 UTC (Dagster's default), the first one on 2026-01-04.
WEEKLY_CHECKPOINT_PARTITIONS = dg.WeeklyPartitionsDefinition(start_date="2026-01-04")
DAILY_CHECKPOINT_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-01")
CHECKPOINT_PARTITIONS = {"weekly": WEEKLY_CHECKPOINT_PARTITIONS, "daily": DAILY_CHECKPOINT_PARTITIONS}


def starting_at(assets: Sequence[dg.AssetsDefinition], start: dt.datetime) -> list[dg.AssetsDefinition]:
    """`assets` with every spec on `WINDOW_PARTITIONS` moved to windows from `start` (the asset
    modules declare the module-level definition at import; the node's start is a setting)."""
    if window_key(start) == window_key(DEFAULT_START):
        return list(assets)
    windows = window_partitions(start)

    def move(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(partitions_def=windows) if spec.partitions_def == WINDOW_PARTITIONS else spec

    return [asset.map_asset_specs(move) for asset in assets]


def window_start(key: str) -> dt.datetime:
    return dt.datetime.strptime(key, WINDOW_KEY_FORMAT).replace(tzinfo=dt.timezone.utc)


def window_keys_between(start: dt.datetime, end: dt.datetime) -> list[str]:
    """Keys of the hours overlapping [start, end)."""
    hour = start.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    keys = []
    while hour < end:
        keys.append(hour.strftime(WINDOW_KEY_FORMAT))
        hour += dt.timedelta(hours=1)
    return keys


def period_start(key: str) -> dt.datetime:
    return dt.datetime.strptime(key, PERIOD_KEY_FORMAT).replace(tzinfo=dt.timezone.utc)
