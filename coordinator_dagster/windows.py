"""Partition keys and the times they stand for, without Dagster.

The hourly window key ("YYYY-MM-DD-HH:MM", Dagster's hourly format) names a lake partition as well
as a Dagster partition, so the lake and the feed writers need these helpers too; they live here so
those packages stay free of Dagster. `partitions.py` re-exports them beside the definitions.
"""

from __future__ import annotations

import datetime as dt

DEFAULT_START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
WINDOW_KEY_FORMAT = "%Y-%m-%d-%H:%M"
PERIOD_KEY_FORMAT = "%Y-%m-%d"


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
    """The start of a checkpoint period key ("YYYY-MM-DD", or "YYYY-MM-DD-HH:MM" for periods
    shorter than a day)."""
    fmt = WINDOW_KEY_FORMAT if len(key) > len("YYYY-MM-DD") else PERIOD_KEY_FORMAT
    return dt.datetime.strptime(key, fmt).replace(tzinfo=dt.timezone.utc)
