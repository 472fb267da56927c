"""Feed retention (FEED_RECORD_TTL_DAYS): the cutoff rule as a plain function, then the
`feed_retention` asset deleting real `feed_records` partitions of a lake whose checkpoints have
real statuses (appended events), and saying what it deleted."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from assets import default_assets
from assets.retention import build_feed_retention_asset
from coordinator_dagster.definitions import build_defs
from coordinator_dagster.feeds.retention import hours_to_prune, retention_cutoff
from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.settings import Settings, load_settings
from coordinator_dagster.statuses import CheckpointStatus
from tests.conftest import pipeline_resources

UTC = dt.timezone.utc
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
NOV = lambda day, hour=0: dt.datetime(2026, 11, day, hour, tzinfo=UTC)  # noqa: E731


def checkpoints(*rows: tuple[str, dt.datetime, dt.datetime, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [dict(zip(("checkpoint_id", "period_start", "period_end", "status"), r)) for r in rows],
        schema={"checkpoint_id": pl.String, "period_start": schemas.UTC_TS, "period_end": schemas.UTC_TS, "status": pl.String},
    )


def test_without_checkpoints_nothing_goes():
    decision = retention_cutoff(NOV(30), 1, checkpoints(), HOUR)
    assert decision.cutoff is None and hours_to_prune([NOV(1)], decision.cutoff) == []


def test_the_ttl_decides_when_every_old_checkpoint_is_paid():
    paid = checkpoints(("CKP-2026-11-01", NOV(1), NOV(8), "PAID"), ("CKP-2026-11-08", NOV(8), NOV(15), "PAID"))
    # 90 days before 2027-03-01 12:30 is 2026-12-01 12:30: the hour boundary before it.
    decision = retention_cutoff(dt.datetime(2027, 3, 1, 12, 30, tzinfo=UTC), 90, paid, HOUR)
    # Past every checkpoint lies what is not checkpointed yet: kept from the newest end less history.
    assert decision.cutoff == NOV(14, 23) and decision.ttl_cutoff == dt.datetime(2026, 12, 1, 12, tzinfo=UTC)
    decision = retention_cutoff(NOV(20, 6), 2, paid, HOUR)
    assert decision.cutoff == NOV(14, 23)  # the TTL allows up to 11-18 06:00, the next period holds it back
    decision = retention_cutoff(NOV(16, 6), 1, paid, HOUR)
    assert decision.cutoff == NOV(14, 23)
    decision = retention_cutoff(NOV(15, 6), 1, paid, HOUR)
    assert decision.cutoff == NOV(14, 6) and decision.reason == "older than the TTL (1 d)"


@pytest.mark.parametrize("status", ["PENDING", "SUBMITTED", "CLAIMABLE"])
def test_a_checkpoint_not_paid_keeps_its_period_and_its_history_whatever_the_ttl(status):
    rows = checkpoints(("CKP-2026-11-01", NOV(1), NOV(8), "PAID"), ("CKP-2026-11-08", NOV(8), NOV(15), status))
    decision = retention_cutoff(dt.datetime(2027, 6, 1, tzinfo=UTC), 1, rows, dt.timedelta(minutes=90))
    assert decision.cutoff == NOV(7, 22)  # 11-08 00:00 less 90 minutes, floored to the hour
    assert f"CKP-2026-11-08 is {status}" in decision.reason
    stored = [NOV(7, 20), NOV(7, 21), NOV(7, 22), NOV(8, 0)]
    assert hours_to_prune(stored, decision.cutoff) == [NOV(7, 20), NOV(7, 21)]  # 21:00 ends at the cutoff


def test_the_ttl_is_at_least_a_day_and_comes_from_the_variable(tmp_path):
    assert load_settings({}).feed_record_ttl_days == 90
    assert retention_cutoff(NOV(15, 6), 0, checkpoints(("c", NOV(1), NOV(30), "PAID")), HOUR).ttl_cutoff == NOV(14, 6)
    settings = load_settings({"COORDINATOR_HOME": str(tmp_path), "FEED_RECORD_TTL_DAYS": "30"})
    defs = build_defs(settings=settings)
    assert defs.resolve_schedule_def("retention_schedule").cron_schedule == "17 3 * * *"
    assert defs.resolve_job_def("retention_job") is not None


def _add_checkpoint(lake: Lake, key: str, start: dt.datetime, end: dt.datetime) -> None:
    row = {"checkpoint_id": f"CKP-{key}", "period_start": start, "period_end": end, "status": "PENDING", "ranking_key": "v",
           "model_count": 0, "entries": "[]", "emission": "{}", "merkle_root": ""}
    lake.write("checkpoints", pl.DataFrame([row], schema=schemas.CHECKPOINTS), key)


def _set_status(lake: Lake, key: str, status: CheckpointStatus, at: dt.datetime) -> None:
    event = {"checkpoint_id": f"CKP-{key}", "event_at": at, "status": status.value, "tx_hash": "sig", "caller": "test"}
    lake.append_event("checkpoint_events", pl.DataFrame([event], schema=schemas.CHECKPOINT_EVENTS))


def test_the_asset_prunes_real_partitions_and_says_what_went(tmp_path):
    home = tmp_path / "home"
    now = NOV(10, 4) + dt.timedelta(minutes=30)
    resources = pipeline_resources(home, now)
    tags = {"dagster/asset_partition_range_start": "2026-11-01-00:00", "dagster/asset_partition_range_end": "2026-11-04-23:00"}
    dg.materialize(default_assets, selection=["feed_records"], resources=resources, tags=tags)
    lake = Lake(home)
    assert len(lake.files("feed_records")) == 96
    _add_checkpoint(lake, "2026-11-01", NOV(1), NOV(2))
    _add_checkpoint(lake, "2026-11-02", NOV(2), NOV(3))
    _set_status(lake, "2026-11-01", CheckpointStatus.PAID, NOV(5))
    lake.ensure_catalog()
    retention = build_feed_retention_asset(ttl_days=1)

    def prune():
        result = dg.materialize([retention], resources=resources)
        [event] = result.asset_materializations_for_node("feed_retention")
        return {k: v.value for k, v in event.metadata.items()}

    # CKP-2026-11-02 is PENDING: its period and the hour of history before it stay (60 one-minute records).
    first = prune()
    assert first["pruned"] == "2026-11-01-00:00 … 2026-11-01-22:00" and first["hours_pruned"] == 23
    assert "CKP-2026-11-02 is PENDING" in first["reason"]
    assert len(lake.files("feed_records")) == 96 - 23
    assert lake.read_window("feed_records", NOV(1), NOV(1, 23)).is_empty()
    assert lake.read_window("feed_records", NOV(1, 23), NOV(2)).height == 2 * 60
    # Paid: its period may go too, up to the hour before the first period not checkpointed.
    _set_status(lake, "2026-11-02", CheckpointStatus.PAID, NOV(6))
    second = prune()
    assert (second["pruned_from"], second["pruned_through"], second["hours_pruned"]) == ("2026-11-01-23:00", "2026-11-02-22:00", 24)
    assert len(lake.files("feed_records")) == 96 - 47
    # Nothing more may go until a later period is checkpointed and paid.
    assert prune()["hours_pruned"] == 0
