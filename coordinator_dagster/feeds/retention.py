"""Feed retention: which hours of `feed_records` may be deleted (FEED_RECORD_TTL_DAYS).

An hour goes once it is older than the TTL and no checkpoint can still need it. A checkpoint that
is not PAID can still be rebuilt or its period re-scored (a new scoring version), and a period
not yet checkpointed will be; both read the feed of their period plus the history the first
rounds are handed. So the cutoff is the earlier of now − TTL and the start of the oldest period
that is not PAID (or, past every checkpoint, the end of the newest one), less that history.
Without any checkpoint nothing is deleted: every period still awaits its first one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from coordinator_dagster.statuses import CheckpointStatus

MIN_TTL_DAYS = 1  # as the reference: a TTL under a day counts as one day


@dataclass(frozen=True)
class RetentionCutoff:
    cutoff: dt.datetime | None  # hours ending at or before this may go; None: none may
    ttl_cutoff: dt.datetime  # what the TTL alone allows
    reason: str  # what set the cutoff, for the run log and the UI


def retention_cutoff(now: dt.datetime, ttl_days: int, checkpoints: pl.DataFrame, history: dt.timedelta) -> RetentionCutoff:
    """The cutoff for `checkpoints` (checkpoint_id, period_start, period_end, status: the lake's
    current statuses); `history`: how far before a round its models' input reaches.

    >>> utc = dt.timezone.utc
    >>> paid = pl.DataFrame({"checkpoint_id": ["CKP-a"], "period_start": [dt.datetime(2026, 1, 4, tzinfo=utc)],
    ...     "period_end": [dt.datetime(2026, 1, 11, tzinfo=utc)], "status": ["PAID"]})
    >>> retention_cutoff(dt.datetime(2026, 6, 1, 12, 30, tzinfo=utc), 90, paid, dt.timedelta(hours=1)).cutoff
    datetime.datetime(2026, 1, 10, 23, 0, tzinfo=datetime.timezone.utc)
    """
    ttl_cutoff = _floor_hour(now - dt.timedelta(days=max(MIN_TTL_DAYS, ttl_days)))
    if checkpoints.is_empty():
        return RetentionCutoff(None, ttl_cutoff, "no checkpoint yet: every period may still need its feed")
    open_ = checkpoints.filter(pl.col("status") != CheckpointStatus.PAID.value)
    newest_end = checkpoints["period_end"].max()
    if open_.height:
        oldest = open_.sort("period_start").row(0, named=True)
        needed_from, why = oldest["period_start"], f"{oldest['checkpoint_id']} is {oldest['status']}"
    else:
        needed_from, why = newest_end, "every checkpoint is PAID; later periods are not checkpointed yet"
    needed_from = min(needed_from, newest_end)
    kept = _floor_hour(needed_from - history)
    if kept < ttl_cutoff:
        return RetentionCutoff(kept, ttl_cutoff, f"kept from {kept:%Y-%m-%d %H:%M} UTC: {why}")
    return RetentionCutoff(ttl_cutoff, ttl_cutoff, f"older than the TTL ({max(MIN_TTL_DAYS, ttl_days)} d)")


def hours_to_prune(stored: Iterable[dt.datetime], cutoff: dt.datetime | None) -> list[dt.datetime]:
    """The stored hour starts whose hour ends at or before `cutoff`, oldest first."""
    if cutoff is None:
        return []
    return sorted(h for h in stored if h + dt.timedelta(hours=1) <= cutoff)


def _floor_hour(ts: dt.datetime) -> dt.datetime:
    return ts.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
