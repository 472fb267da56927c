"""The checkpoint lifecycle as plain functions: forward one step at a time, confirm once."""

import datetime as dt

import pytest

from coordinator_dagster.checkpoint_lifecycle import (
    ORDER,
    Change,
    Conflict,
    UnknownStatus,
    confirmation,
    event_row,
    event_time,
    may_rebuild,
    status_change,
)
from coordinator_dagster.lake import schemas
from coordinator_dagster.statuses import CheckpointStatus as S

CKP = "CKP-2026-11-15"
AT = dt.datetime(2026, 11, 22, 1, tzinfo=dt.timezone.utc)


def test_the_status_moves_forward_one_step_and_keeps_the_transaction():
    assert status_change(CKP, S.PENDING, S.SUBMITTED, None) == Change(S.SUBMITTED, None)
    assert status_change(CKP, S.SUBMITTED, "CLAIMABLE", "5sig") == Change(S.CLAIMABLE, "5sig")
    assert status_change(CKP, S.CLAIMABLE, S.PAID, "5sig") == Change(S.PAID, "5sig")


@pytest.mark.parametrize("status", ORDER)
def test_asking_for_the_current_status_records_nothing(status):
    assert status_change(CKP, status, status, None) is None


@pytest.mark.parametrize(
    ("current", "wanted", "reason"),
    [
        (S.PENDING, S.CLAIMABLE, "the next status is SUBMITTED, CLAIMABLE would skip it"),
        (S.PENDING, S.PAID, "would skip"),
        (S.SUBMITTED, S.PAID, "the next status is CLAIMABLE"),
        (S.SUBMITTED, S.PENDING, "only moves forward, not back to PENDING"),
        (S.PAID, S.CLAIMABLE, "not back to CLAIMABLE"),
    ],
)
def test_a_skip_or_a_step_back_is_a_conflict(current, wanted, reason):
    with pytest.raises(Conflict, match=reason):
        status_change(CKP, current, wanted, None)


@pytest.mark.parametrize("wanted", ["DONE", "submitted", ""])
def test_an_unknown_status_is_refused_as_such(wanted):
    with pytest.raises(UnknownStatus, match="PENDING, SUBMITTED, CLAIMABLE, PAID"):
        status_change(CKP, S.PENDING, wanted, None)


def test_confirming_submits_once_and_refuses_another_transaction():
    assert confirmation(CKP, S.PENDING, None, "5sig") == Change(S.SUBMITTED, "5sig")
    # Moved to SUBMITTED by a status change without a transaction: the confirmation adds it.
    assert confirmation(CKP, S.SUBMITTED, None, "5sig") == Change(S.SUBMITTED, "5sig")
    assert confirmation(CKP, S.SUBMITTED, "5sig", "5sig") is None
    assert confirmation(CKP, S.PAID, "5sig", "5sig") is None
    with pytest.raises(Conflict, match="already confirmed with another transaction 5sig"):
        confirmation(CKP, S.SUBMITTED, "5sig", "6sig")
    with pytest.raises(Conflict, match="is CLAIMABLE: only a PENDING checkpoint can be confirmed"):
        confirmation(CKP, S.CLAIMABLE, None, "5sig")


def test_only_a_pending_checkpoint_is_rebuilt():
    assert may_rebuild(None) and may_rebuild(S.PENDING)
    assert not any(may_rebuild(s) for s in (S.SUBMITTED, S.CLAIMABLE, S.PAID))


def test_event_times_strictly_increase_even_if_the_clock_does_not():
    assert event_time(AT, None) == AT
    assert event_time(AT, AT - dt.timedelta(seconds=1)) == AT
    assert event_time(AT, AT) == AT + dt.timedelta(microseconds=1)
    assert event_time(AT - dt.timedelta(seconds=5), AT) == AT + dt.timedelta(microseconds=1)


def test_a_change_is_recorded_as_one_event_row():
    row = event_row(CKP, Change(S.SUBMITTED, "5sig"), "admin", AT)
    assert row.schema == schemas.CHECKPOINT_EVENTS
    assert row.to_dicts() == [{"checkpoint_id": CKP, "event_at": AT, "status": "SUBMITTED", "tx_hash": "5sig", "caller": "admin"}]
