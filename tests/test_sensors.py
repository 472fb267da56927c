"""Sensors, schedules and the whole Definitions, evaluated against a real lake."""

import datetime as dt
import json

import dagster as dg
import pytest

from assets import default_assets
from coordinator_dagster.definitions import build_defs
from coordinator_dagster.settings import Settings
from resources import ClockResource
from sensors import predict_sensor, score_sensor
from sensors.jobs import checkpoint_job
from sensors.schedules import build_checkpoint_schedule, build_ingest_schedule
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources


def evaluate(sensor, resources, cursor=None):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        return sensor(context)


def ingest(resources, key=HOUR_KEY):
    dg.materialize(default_assets, selection=["feed_records"], resources=resources, partition_key=key)


def at(home, now):
    return pipeline_resources(home, now)


def test_predict_sensor_skips_until_the_rounds_data_has_landed(home):
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    result = evaluate(predict_sensor, at(home, now))
    assert isinstance(result, dg.SkipReason)
    assert "waits for BTC data at 2026-11-20T10:19:00Z" in result.skip_message


def test_predict_sensor_requests_one_run_per_round(home):
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    ingest(at(home, now))
    result = evaluate(predict_sensor, at(home, now))
    [request] = result.run_requests
    assert request.run_key == "predict:2026-11-20T10:20:00Z"
    assert request.partition_key == HOUR_KEY
    assert request.tags["coordinator/scopes"] == "btc-60s,eth-60s"
    cursor = json.loads(result.cursor)
    assert cursor == {"btc-60s": "2026-11-20T10:20:00Z", "eth-60s": "2026-11-20T10:20:00Z"}
    # Same round again: nothing new to do.
    again = evaluate(predict_sensor, at(home, now + dt.timedelta(seconds=20)), cursor=result.cursor)
    assert isinstance(again, dg.SkipReason)
    # Next minute, once its candle is in: the next round.
    later = now + dt.timedelta(minutes=1)
    ingest(at(home, later))
    nxt = evaluate(predict_sensor, at(home, later), cursor=result.cursor)
    assert [r.run_key for r in nxt.run_requests] == ["predict:2026-11-20T10:21:00Z"]


def test_predict_sensor_targets_the_new_hour_at_the_top_of_the_hour(home):
    now = HOUR + dt.timedelta(hours=1, seconds=3)
    ingest(at(home, now), key=HOUR_KEY)  # the 10:59 candle closes at 11:00 and lives in 10:00
    [request] = evaluate(predict_sensor, at(home, now)).run_requests
    assert request.partition_key == "2026-11-20-11:00"


def test_score_sensor_waits_for_the_truth_then_requests_scoring(home):
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    ingest(at(home, now))
    result = evaluate(score_sensor, at(home, now))
    [request] = [r for r in result.run_requests if r.run_key.startswith("score:")]
    # Round 10:19 resolves at 10:20, when the candle that opened at 10:19 closed.
    assert request.run_key == "score:2026-11-20T10:19:00Z"
    assert request.partition_key == HOUR_KEY
    skipped = evaluate(score_sensor, at(home, now), cursor=result.cursor)
    assert isinstance(skipped, dg.SkipReason)
    fresh = pipeline_resources(home.parent / "empty", now)
    closed_only = json.dumps({"closed-hour": json.loads(result.cursor)["closed-hour"]})
    waiting = evaluate(score_sensor, fresh, cursor=closed_only)
    assert "waits for truth data" in waiting.skip_message


def test_score_sensor_gives_each_hour_a_final_pass_after_the_grace_period(home):
    # Grace 3600 s + horizon 60 s + candle 60 s: at 12:02:05 the 10:00 hour is settled.
    now = HOUR + dt.timedelta(hours=2, minutes=2, seconds=5)
    result = evaluate(score_sensor, at(home, now), cursor=json.dumps({"closed-hour": "2026-11-20T09:00:00Z"}))
    closes = [r for r in result.run_requests if r.run_key.startswith("close:")]
    assert [(r.run_key, r.partition_key) for r in closes] == [("close:2026-11-20T10:00:00Z", HOUR_KEY)]
    assert json.loads(result.cursor)["closed-hour"] == "2026-11-20T10:00:00Z"
    earlier = evaluate(score_sensor, at(home, now - dt.timedelta(minutes=5)), cursor=result.cursor)
    assert isinstance(earlier, dg.SkipReason)


def test_sensor_requests_launch_runs_that_predict_and_score(home):
    """The requests the sensors emit, executed as the daemon would, fill the lake."""
    from coordinator_dagster.lake.store import Lake

    cursors = {}
    first = HOUR + dt.timedelta(minutes=20, seconds=5)
    dg.materialize(default_assets, selection=["feed_records"], resources=at(home, first), partition_key="2026-11-20-09:00")
    for now in (first, first + dt.timedelta(minutes=2)):  # the node runs from 10:20 to 10:22
        resources = at(home, now)
        ingest(resources)
        defs = build_defs(settings=Settings(home=home), resource_overrides=resources)
        for sensor, job in ((predict_sensor, "predict_job"), (score_sensor, "score_job")):
            result = evaluate(sensor, resources, cursor=cursors.get(job))
            cursors[job] = result.cursor
            for request in [r for r in result.run_requests if not r.run_key.startswith("close:")]:
                run = defs.resolve_job_def(job).execute_in_process(partition_key=request.partition_key, tags=request.tags)
                assert run.success

    lake = Lake(home)
    counts = dict(lake.query("SELECT status, count(*) AS n FROM predictions GROUP BY ALL").iter_rows())
    # Rounds 10:00 … 10:22 for two subjects and three models. The node started at 10:20: rounds
    # more than one interval before its first live round (10:00 … 10:18) were missed and are
    # recorded so (ABSENT), not predicted late. By 10:22:05 the candle closing at 10:22 has
    # landed, so 10:19, 10:20 and 10:21 (whose truth is the price at 10:22) are scored; 10:22
    # waits for the price at 10:23.
    assert counts == {"ABSENT": 19 * 2 * 3, "SCORED": 3 * 2 * 3, "PENDING": 1 * 2 * 3}
    reasons = lake.query("SELECT DISTINCT failed_reason FROM predictions WHERE status = 'ABSENT'")["failed_reason"]
    assert all(r.startswith("round missed: the node was not predicting at 2026-11-20 10:") for r in reasons)
    assert lake.read("leaderboard").height == 3


def test_ingest_schedule_refreshes_the_hour_of_the_newest_closed_candle():
    schedule = build_ingest_schedule("1m")
    assert schedule.cron_schedule == "* * * * *"
    for tick, key in (("2026-11-20T10:21:00+00:00", "2026-11-20-10:00"), ("2026-11-20T11:00:00+00:00", "2026-11-20-10:00"),
                      ("2026-11-20T11:01:00+00:00", "2026-11-20-11:00")):
        context = dg.build_schedule_context(scheduled_execution_time=dt.datetime.fromisoformat(tick))
        assert schedule(context).partition_key == key


def test_checkpoint_schedule_builds_the_period_that_just_ended():
    defs = build_defs(settings=Settings(home="/tmp/unused-coordinator-home"))
    schedule = defs.resolve_schedule_def("checkpoint_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "5 0 * * 0"  # Sundays 00:05 UTC, after the week's last hour
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 22, 0, 5, tzinfo=dt.timezone.utc))
    request = schedule(context)
    assert request.partition_key == "2026-11-15" and request.run_key == "checkpoint:2026-11-15"
    daily = build_checkpoint_schedule(checkpoint_job, dg.DailyPartitionsDefinition(start_date="2026-01-01"))
    assert daily.cron_schedule == "5 0 * * *"
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 22, 0, 5, tzinfo=dt.timezone.utc))
    assert daily(context).partition_key == "2026-11-21"


def test_the_whole_definitions_load(tmp_path):
    defs = build_defs(settings=Settings(home=tmp_path))
    dg.Definitions.validate_loadable(defs)
    assert {a.key.to_user_string() for a in defs.resolve_all_asset_specs()} == {
        "feed_records", "inputs", "predictions", "scores", "snapshots", "leaderboard", "group_leaderboard", "checkpoints", "feed_retention",
        "audit_bundle", "what_if_report",
    }
    for name in ("ingest_job", "predict_job", "score_job", "checkpoint_job", "what_if_job", "approve_checkpoint_job"):
        assert defs.resolve_job_def(name) is not None
    assert {s.name for s in defs.sensors} == {"predict_sensor", "score_sensor"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in defs.sensors)
    assert {s.name for s in defs.schedules} == {"ingest_schedule", "checkpoint_schedule", "retention_schedule"}


def test_a_daily_checkpoint_period_comes_from_the_contract(tmp_path):
    from coordinator_dagster.contracts import CrunchContract

    defs = build_defs(settings=Settings(home=tmp_path), contract=CrunchContract(checkpoint_period="daily"))
    spec = next(s for s in defs.resolve_all_asset_specs() if s.key.to_user_string() == "checkpoints")
    assert isinstance(spec.partitions_def, dg.DailyPartitionsDefinition)


def test_unknown_feed_source_is_a_startup_error(tmp_path):
    with pytest.raises(ValueError, match="FEED_SOURCE"):
        build_defs(settings=Settings(home=tmp_path, feed_source="carrier-pigeon"))


def test_clock_resource_pins_now():
    assert ClockResource(fixed_now="2026-11-20T10:00:00").now() == HOUR
    assert ClockResource().now().tzinfo is not None
