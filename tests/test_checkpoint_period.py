"""CHECKPOINT_INTERVAL_SECONDS: any period that lines up with the hours maps to the checkpoint
partitions (keys, windows, the schedule's choice), and a checkpoint covers exactly its period."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from assets import default_assets
from assets.checkpoints import build_checkpoints_asset
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.definitions import build_defs
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.partitions import checkpoint_partitions, period_key_for, period_window
from coordinator_dagster.settings import Settings, load_settings
from sensors.jobs import default_jobs
from sensors.schedules import build_checkpoint_schedule
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 18, 14, 25, tzinfo=UTC)
SIX_HOURS = 6 * 3600
THREE_DAYS = 3 * 86_400


def test_a_six_hour_period_has_one_key_per_quarter_day_from_the_one_holding_the_start():
    periods = checkpoint_partitions(SIX_HOURS, START)
    assert periods.get_partition_keys(current_time=dt.datetime(2026, 11, 19, 7, tzinfo=UTC)) == [
        "2026-11-18-12:00",
        "2026-11-18-18:00",
        "2026-11-19-00:00",
    ]
    assert period_key_for(periods, dt.datetime(2026, 11, 20, 11, 59, tzinfo=UTC)) == "2026-11-20-06:00"
    assert period_window(periods, "2026-11-20-06:00") == (dt.datetime(2026, 11, 20, 6, tzinfo=UTC), dt.datetime(2026, 11, 20, 12, tzinfo=UTC))


def test_a_three_day_period_runs_from_the_day_holding_the_start():
    periods = checkpoint_partitions(THREE_DAYS, START)
    assert periods.get_partition_keys()[:3] == ["2026-11-18", "2026-11-21", "2026-11-24"]
    # Month ends do not restart the count (a "*/3" day-of-month cron would).
    assert "2026-12-03" in periods.get_partition_keys() and "2026-12-01" not in periods.get_partition_keys()
    assert period_key_for(periods, dt.datetime(2026, 11, 20, 23, tzinfo=UTC)) == "2026-11-18"
    assert period_key_for(periods, START - dt.timedelta(days=1)) is None
    assert period_window(periods, "2026-11-21") == (dt.datetime(2026, 11, 21, tzinfo=UTC), dt.datetime(2026, 11, 24, tzinfo=UTC))


@pytest.mark.parametrize("seconds", [5400, 36 * 3600, 7 * 3600, 15 * 60, 1800])
def test_a_period_that_does_not_line_up_with_the_hours_is_refused(seconds):
    with pytest.raises(ValueError, match="whole hours dividing a day"):
        checkpoint_partitions(seconds, START)
    with pytest.raises(ValueError, match="CHECKPOINT_INTERVAL_SECONDS"):
        load_settings({"CHECKPOINT_INTERVAL_SECONDS": str(seconds)})


def test_the_setting_overrides_the_contracts_period(tmp_path):
    settings = load_settings({"COORDINATOR_HOME": str(tmp_path), "CHECKPOINT_INTERVAL_SECONDS": str(SIX_HOURS)})
    defs = build_defs(settings=settings.model_copy(update={"partitions_start": START}), contract=CrunchContract(checkpoint_period="weekly"))
    [spec] = [s for s in defs.resolve_all_asset_specs() if s.key.to_user_string() == "checkpoints"]
    assert spec.partitions_def.get_first_partition_key() == "2026-11-18-12:00"
    # The weekly default is unchanged without the setting.
    plain = build_defs(settings=Settings(home=tmp_path / "other", partitions_start=START), contract=CrunchContract(checkpoint_period="weekly"))
    [spec] = [s for s in plain.resolve_all_asset_specs() if s.key.to_user_string() == "checkpoints"]
    assert spec.partitions_def.get_first_partition_key() == "2026-11-15"


def _tick(schedule: dg.ScheduleDefinition, at: dt.datetime):
    return schedule(dg.build_schedule_context(scheduled_execution_time=at))


@pytest.mark.parametrize(
    ("seconds", "tick", "expected"),
    [
        (SIX_HOURS, dt.datetime(2026, 11, 20, 12, 5, tzinfo=UTC), "2026-11-20-06:00"),
        (THREE_DAYS, dt.datetime(2026, 11, 21, 0, 5, tzinfo=UTC), "2026-11-18"),
        (THREE_DAYS, dt.datetime(2026, 11, 22, 0, 5, tzinfo=UTC), None),  # mid-period: nothing ended
        (3600, dt.datetime(2026, 11, 20, 13, 5, tzinfo=UTC), "2026-11-20-12:00"),
    ],
)
def test_the_schedule_builds_the_period_that_just_ended(seconds, tick, expected):
    checkpoint_job = next(job for job in default_jobs if job.name == "checkpoint_job")
    schedule = build_checkpoint_schedule(checkpoint_job, checkpoint_partitions(seconds, START))
    result = _tick(schedule, tick)
    if expected is None:
        assert isinstance(result, dg.SkipReason)
    else:
        assert result.partition_key == expected and result.run_key == f"checkpoint:{expected}"


@pytest.fixture(scope="module")
def scored_hour(tmp_path_factory):
    home = tmp_path_factory.mktemp("period") / "home"
    resources = pipeline_resources(home, HOUR + dt.timedelta(hours=3))
    dg.materialize(
        default_assets,
        selection=["feed_records"],
        resources=resources,
        tags={"dagster/asset_partition_range_start": "2026-11-20-09:00", "dagster/asset_partition_range_end": "2026-11-20-11:00"},
    )
    dg.materialize(default_assets, selection=["inputs", "predictions", "scores", "snapshots"], resources=resources, partition_key=HOUR_KEY)
    return home, resources


@pytest.mark.parametrize(
    ("seconds", "key", "window", "holds_the_hour"),
    [
        (SIX_HOURS, "2026-11-20-06:00", (dt.datetime(2026, 11, 20, 6, tzinfo=UTC), dt.datetime(2026, 11, 20, 12, tzinfo=UTC)), True),
        (SIX_HOURS, "2026-11-20-12:00", (dt.datetime(2026, 11, 20, 12, tzinfo=UTC), dt.datetime(2026, 11, 20, 18, tzinfo=UTC)), False),
        (THREE_DAYS, "2026-11-18", (dt.datetime(2026, 11, 18, tzinfo=UTC), dt.datetime(2026, 11, 21, tzinfo=UTC)), True),
    ],
)
def test_the_checkpoint_covers_exactly_its_period(scored_hour, seconds, key, window, holds_the_hour):
    home, resources = scored_hour
    checkpoints = build_checkpoints_asset(checkpoint_partitions(seconds, START))
    assets = [a for a in default_assets if a.key.to_user_string() != "checkpoints"] + [checkpoints]
    result = dg.materialize(assets, selection=["checkpoints"], resources=resources, partition_key=key)
    lake = Lake(home, window_names=resources["contract"].aggregation.windows)
    [row] = lake.read("checkpoints", key).to_dicts()
    assert (row["period_start"], row["period_end"]) == window
    assert row["checkpoint_id"] == f"CKP-{key}"
    [event] = result.asset_materializations_for_node("checkpoints")
    snapshots = lake.read_window("snapshots", *window, column="period_start")
    assert event.metadata["snapshots_used"].value == snapshots.height
    assert (snapshots.height > 0) == holds_the_hour


@pytest.mark.process
def test_info_shows_the_period_the_node_runs(tmp_path):
    import httpx

    from api.app import create_app
    from api.settings import ApiSettings
    from tests.api_fixtures import serve

    shown = {}
    for environ in ({}, {"CHECKPOINT_INTERVAL_SECONDS": str(SIX_HOURS)}):
        settings = ApiSettings.from_env({"COORDINATOR_HOME": str(tmp_path), **environ})
        with serve(create_app(settings)) as base_url:
            shown[bool(environ)] = httpx.get(f"{base_url}/info", timeout=10).json()["contract"]["checkpoint_period"]
    assert shown == {False: "weekly", True: "6h"}  # unset: the contract's period


@pytest.mark.process
def test_the_demo_cuts_the_periods_the_setting_gives(tmp_path, monkeypatch):
    from coordinator_dagster.cli.demo import run_demo

    monkeypatch.setenv("CHECKPOINT_INTERVAL_SECONDS", str(SIX_HOURS))
    monkeypatch.delenv("MODELS_MANIFEST", raising=False)
    result = run_demo(tmp_path, dt.datetime(2026, 11, 20, tzinfo=UTC), 1)
    # The demo's day in six-hour periods (the weekly default would be one checkpoint, 2026-11-15).
    assert sorted(p.parent.name for p in Lake(tmp_path).files("checkpoints")) == [
        "period=2026-11-20-00:00", "period=2026-11-20-06:00", "period=2026-11-20-12:00", "period=2026-11-20-18:00",
    ]
    assert result.checkpoints.height == 4 and result.predictions == {"SCORED": 8640}
