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

# The key <-> time helpers live in windows.py (no Dagster) so the lake and the feeds can use them;
# they are re-exported here for the Dagster side.
from coordinator_dagster.windows import (  # noqa: F401
    DEFAULT_START,
    PERIOD_KEY_FORMAT,
    WINDOW_KEY_FORMAT,
    period_start,
    window_key,
    window_keys_between,
    window_start,
)


def window_partitions(start: dt.datetime) -> dg.HourlyPartitionsDefinition:
    """Hourly windows from the hour holding `start`, including the hour in progress."""
    return dg.HourlyPartitionsDefinition(start_date=window_key(start), end_offset=1)


PERIOD_SECONDS = {"daily": 86_400, "weekly": 604_800}
# Multi-day periods other than a week have no uniform cron; their keys are listed up front, this
# many years of them (a 3-day period: ~1,200 keys).
LISTED_PERIOD_YEARS = 10


def checkpoint_partitions(period: str | int, start: dt.datetime) -> dg.PartitionsDefinition:
    """Checkpoint partitions for `period`, whose first period holds `start`, so the period in
    which the data starts has its checkpoint.

    `period` is "weekly" (Sunday 00:00 UTC to Sunday, Dagster's default), "daily", or a length in
    seconds (CHECKPOINT_INTERVAL_SECONDS):
    - one day or one week: the daily or weekly partitions above (keys "YYYY-MM-DD");
    - whole hours dividing a day (1 h, 6 h, 12 h …): a cron partition per period, keys
      "YYYY-MM-DD-HH:MM";
    - whole days (3 days, 14 days …): periods of that many days from the day holding `start`,
      listed (`LISTED_PERIOD_YEARS`), keys "YYYY-MM-DD" of each period's first day.
    Anything else (15 min, 90 min, 36 h) is refused: its periods would not line up with the hours
    that snapshots and the schedule use. A period shorter than an hour would hold no whole
    snapshot (snapshots are hourly), so its checkpoint would pay nobody.
    """
    seconds = PERIOD_SECONDS.get(period) if isinstance(period, str) else period
    if seconds is None:
        raise ValueError(f"unknown checkpoint period {period!r}; expected one of {sorted(PERIOD_SECONDS)} or a number of seconds")
    default = window_key(start) == window_key(DEFAULT_START)
    day = start.astimezone(dt.timezone.utc).date()
    if seconds == PERIOD_SECONDS["weekly"]:
        sunday = day - dt.timedelta(days=(day.weekday() + 1) % 7)
        return WEEKLY_CHECKPOINT_PARTITIONS if default else dg.WeeklyPartitionsDefinition(start_date=sunday.strftime(PERIOD_KEY_FORMAT))
    if seconds == PERIOD_SECONDS["daily"]:
        return DAILY_CHECKPOINT_PARTITIONS if default else dg.DailyPartitionsDefinition(start_date=day.strftime(PERIOD_KEY_FORMAT))
    cron = _cron_dividing_a_day(seconds)
    if cron is not None:
        # The first period is the one holding `start` on the day's grid.
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
        first = midnight + dt.timedelta(seconds=seconds * ((start - midnight) // dt.timedelta(seconds=seconds)))
        return dg.TimeWindowPartitionsDefinition(start=first.strftime(WINDOW_KEY_FORMAT), fmt=WINDOW_KEY_FORMAT, cron_schedule=cron, timezone="UTC")
    if seconds % 86_400 == 0:
        step = dt.timedelta(seconds=seconds)
        count = LISTED_PERIOD_YEARS * 366 * 86_400 // seconds
        return dg.StaticPartitionsDefinition([(day + step * i).strftime(PERIOD_KEY_FORMAT) for i in range(count)])
    raise ValueError(
        f"checkpoint period of {seconds} s: expected whole hours dividing a day, or whole days "
        "(CHECKPOINT_INTERVAL_SECONDS); snapshots are hourly, so a period is at least 3600 s"
    )


def period_label(period: str | int) -> str:
    """A checkpoint period as people name it: "daily", "weekly", or its length ("6h", "15m", "3d").
    >>> [period_label(p) for p in ("weekly", 86_400, 21_600, 900, 259_200)]
    ['weekly', 'daily', '6h', '15m', '3d']
    """
    if isinstance(period, str):
        return period
    named = {seconds: name for name, seconds in PERIOD_SECONDS.items()}
    if period in named:
        return named[period]
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if period % size == 0:
            return f"{period // size}{unit}"
    return f"{period}s"


def _cron_dividing_a_day(seconds: int) -> str | None:
    if seconds < 86_400 and seconds % 3600 == 0 and 24 % (seconds // 3600) == 0:
        return f"0 */{seconds // 3600} * * *"
    return None


def period_window(partitions_def: dg.PartitionsDefinition, key: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of checkpoint period `key`, for time-window and listed partitions alike."""
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        window = partitions_def.time_window_for_partition_key(key)
        return window.start, window.end
    keys = partitions_def.get_partition_keys()
    at = keys.index(key)
    start = period_start(key)
    step = period_start(keys[1]) - period_start(keys[0])
    return start, start + step if at + 1 == len(keys) else period_start(keys[at + 1])


def period_key_for(partitions_def: dg.PartitionsDefinition, ts: dt.datetime) -> str | None:
    """The key of the checkpoint period holding `ts` (None before the first one)."""
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return partitions_def.get_partition_key_for_timestamp(ts.timestamp()) if ts >= partitions_def.start else None
    keys = partitions_def.get_partition_keys()
    first, second = period_start(keys[0]), period_start(keys[1])
    if ts < first:
        return None
    index = (ts - first) // (second - first)
    return keys[index] if index < len(keys) else None


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


# Tournament rounds come from uploads at no fixed time: one dynamic partition per round id, added
# by the round sensor when a round's features land (or by the operator in the UI). Round ids are
# the operator's; they are few (one per uploaded round), far under Dagster's comfortable range.
TOURNAMENT_ROUNDS = dg.DynamicPartitionsDefinition(name="tournament_rounds")
