"""A checkpoint's lifecycle: PENDING → SUBMITTED → CLAIMABLE → PAID, forward only, one step at a time.

Plain functions that decide whether a requested change is accepted, refused (`Conflict`: a step
back, a skipped step, another transaction) or already done (None: nothing to record), and build
the event that records it. A change is never written over a stored row: it is one appended
`checkpoint_events` row; the current state is the newest event (derived by the lake's
`checkpoint_state` view). The report API's routes call these under the lake's per-checkpoint
lock; the `checkpoints` asset asks `may_rebuild` before it rebuilds a period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.statuses import CheckpointStatus

ORDER = (CheckpointStatus.PENDING, CheckpointStatus.SUBMITTED, CheckpointStatus.CLAIMABLE, CheckpointStatus.PAID)


class UnknownStatus(ValueError):
    """A status that is not one of the lifecycle's (the API answers 422)."""


class Conflict(ValueError):
    """A change the checkpoint's current state does not allow (the API answers 409)."""


@dataclass(frozen=True)
class Change:
    """The event to append: the status it records and the transaction it carries."""

    status: CheckpointStatus
    tx_hash: str | None


def parse_status(value: str) -> CheckpointStatus:
    try:
        return CheckpointStatus(value)
    except ValueError:
        raise UnknownStatus(f"unknown checkpoint status {value!r}; the statuses are {', '.join(ORDER)}") from None


def may_rebuild(status: CheckpointStatus | None) -> bool:
    """A checkpoint is rebuilt only while PENDING (None: no event yet, as built): once submitted,
    its emission may be on-chain and must not change."""
    return status in (None, CheckpointStatus.PENDING)


def status_change(checkpoint_id: str, current: CheckpointStatus, wanted: CheckpointStatus | str, tx_hash: str | None) -> Change | None:
    """Move one step forward, keeping the recorded transaction; None if already there."""
    wanted = parse_status(wanted)
    here, there = ORDER.index(current), ORDER.index(wanted)
    if there == here:
        return None  # idempotent: nothing to record
    if there < here:
        raise Conflict(f"{checkpoint_id} is {current}: status only moves forward, not back to {wanted}")
    if there > here + 1:
        raise Conflict(f"{checkpoint_id} is {current}: the next status is {ORDER[here + 1]}, {wanted} would skip it")
    return Change(wanted, tx_hash)


def confirmation(checkpoint_id: str, current: CheckpointStatus, recorded_tx: str | None, tx_hash: str) -> Change | None:
    """Record the on-chain transaction: PENDING → SUBMITTED with it, or a SUBMITTED checkpoint
    (moved there without one) gets it. The same transaction again is None (nothing to record)."""
    if recorded_tx == tx_hash:
        return None
    if recorded_tx is not None:
        raise Conflict(f"{checkpoint_id} is already confirmed with another transaction {recorded_tx}")
    if current in (CheckpointStatus.PENDING, CheckpointStatus.SUBMITTED):
        return Change(CheckpointStatus.SUBMITTED, tx_hash)
    raise Conflict(f"{checkpoint_id} is {current}: only a PENDING checkpoint can be confirmed")


def event_time(now: dt.datetime, last_at: dt.datetime | None) -> dt.datetime:
    """The newest event is the state: event times strictly increase even if the clock does not."""
    if last_at is not None and now <= last_at:
        return last_at + dt.timedelta(microseconds=1)
    return now


def event_row(checkpoint_id: str, change: Change, caller: str, at: dt.datetime) -> pl.DataFrame:
    """The `checkpoint_events` row that records `change`."""
    row = {"checkpoint_id": checkpoint_id, "event_at": at, "status": change.status.value, "tx_hash": change.tx_hash, "caller": caller}
    return pl.DataFrame([row], schema=schemas.CHECKPOINT_EVENTS)
