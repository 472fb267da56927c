"""Every PartitionsDefinition of the project, defined once, plus key ↔ time helpers.

Pipeline assets share hourly windows: a year is ~8,800 keys (Dagster lists and backfills these
quickly; one-minute keys for a year would be 526k and stall the UI), and minute rounds live as
rows inside an hour. `end_offset=1` makes the hour in progress a valid key, so live rounds land
in their own hour as it fills. Checkpoints use the contract's checkpoint period.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

PARTITIONS_START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
WINDOW_KEY_FORMAT = "%Y-%m-%d-%H:%M"
PERIOD_KEY_FORMAT = "%Y-%m-%d"

WINDOW_PARTITIONS = dg.HourlyPartitionsDefinition(
    start_date=PARTITIONS_START.strftime(WINDOW_KEY_FORMAT), end_offset=1
)

# Weekly periods start on Sunday 00:00 UTC (Dagster's default), the first one on 2026-01-04.
WEEKLY_CHECKPOINT_PARTITIONS = dg.WeeklyPartitionsDefinition(start_date="2026-01-04")
DAILY_CHECKPOINT_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-01")
CHECKPOINT_PARTITIONS = {"weekly": WEEKLY_CHECKPOINT_PARTITIONS, "daily": DAILY_CHECKPOINT_PARTITIONS}


def window_key(ts: dt.datetime) -> str:
    """The hourly partition key holding `ts`."""
    return ts.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0).strftime(WINDOW_KEY_FORMAT)


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
