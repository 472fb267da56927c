"""The round engine: live rounds recorded once each, across restarts, reported to a real Dagster
instance as runless materializations; a crash between the write and the report repaired."""

import datetime as dt
import os
import time

import dagster as dg
import polars as pl
import pytest

from assets import default_assets
from coordinator_dagster.cli.rounds import DagsterReporter
from coordinator_dagster.contracts import default_contract
from coordinator_dagster.engine.outbox import Entry, Outbox
from coordinator_dagster.engine.round_engine import ROUND_KEY, RoundEngine
from coordinator_dagster.engine.timing import recent_timings
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.statuses import PredictionStatus
from resources import InProcessModelRunner
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources

ROUND = HOUR + dt.timedelta(minutes=20)


def ingest(home, now, key=HOUR_KEY):
    dg.materialize(default_assets, selection=["feed_records"], resources=pipeline_resources(home, now), partition_key=key)


def engine(home, now, reporter=None):
    contract = default_contract()
    runner = InProcessModelRunner(timeout_seconds=5.0)
    built = RoundEngine(Lake.for_contract(home, contract), contract, 60, lambda: runner.open(contract.output_type), reporter, clock=lambda: now)
    built.start()
    return built


def reports(instance, table):
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(table), asset_partitions=[HOUR_KEY]), limit=100).records
    return [r.asset_materialization for r in records]


def predictions(home):
    return Lake.for_contract(home, default_contract()).read("predictions", HOUR_KEY)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_the_engine_records_each_round_once_across_a_restart(home, instance):
    now = ROUND + dt.timedelta(seconds=2)
    ingest(home, now)
    first = engine(home, now, DagsterReporter(instance))
    assert first.step() == [ROUND]
    rows = predictions(home)
    assert rows.height == 3 * 2  # three example models x two subjects
    assert set(rows["round_ts"]) == {ROUND}
    assert set(rows["status"]) == {PredictionStatus.PENDING.value}
    [inputs_event] = reports(instance, "inputs")
    [predictions_event] = reports(instance, "predictions")
    assert predictions_event.metadata[ROUND_KEY].value == "2026-11-20T10:20:00Z"
    assert predictions_event.metadata["new_rows"].value == 6
    assert inputs_event.metadata["new_rows"].value == 2
    assert "end_to_end_ms" in predictions_event.metadata and "model_calls_ms" in predictions_event.metadata
    assert first.step() == []  # the same pass again: nothing new

    # A restart at the same moment records nothing again and reports nothing.
    again = engine(home, now, DagsterReporter(instance))
    assert again.step() == []
    assert predictions(home).height == 6 and len(reports(instance, "predictions")) == 1

    # The next minute's candle: the next round only.
    later = now + dt.timedelta(minutes=1)
    ingest(home, later)
    nxt = engine(home, later, DagsterReporter(instance))
    assert nxt.step() == [ROUND + dt.timedelta(minutes=1)]
    rows = predictions(home)
    assert rows.height == 12 and rows["prediction_id"].n_unique() == 12
    [timing] = recent_timings(home / "engine")[-1:]
    assert timing["round"] == "2026-11-20T10:21:00Z" and timing["predictions"] == 6
    assert timing["landed_us"] <= timing["persisted_us"] <= timing["reported_us"]


def test_a_predict_run_never_predicts_a_round_the_engine_recorded(home, instance):
    now = ROUND + dt.timedelta(seconds=2)
    ingest(home, now)
    engine(home, now).step()
    before = predictions(home)
    # A replay of the hour (no live tag) predicts every input the partition lacks: none.
    dg.materialize(default_assets, selection=["predictions"], resources=pipeline_resources(home, now), partition_key=HOUR_KEY)
    assert predictions(home).sort("prediction_id").equals(before.sort("prediction_id"))


def test_rounds_asked_after_their_cutoff_go_to_the_late_track_with_their_lateness(home):
    now = ROUND + dt.timedelta(seconds=2)
    ingest(home, now)
    engine(home, now).step()
    later = ROUND + dt.timedelta(minutes=4, seconds=2)
    ingest(home, later)
    recorded = engine(home, later).step()  # a restart four minutes on
    assert recorded == [ROUND + dt.timedelta(minutes=m) for m in (1, 2, 3, 4)]
    rows = predictions(home)
    by_round = {r: set(g["status"]) for (r,), g in rows.group_by("round_ts")}
    late, pending = PredictionStatus.LATE.value, PredictionStatus.PENDING.value
    # Cutoff: one interval (60 s) by default. 10:21 asked at 10:24:02 is 182 s late, 10:23 62 s.
    assert by_round[ROUND + dt.timedelta(minutes=1)] == {late}
    assert by_round[ROUND + dt.timedelta(minutes=3)] == {late}
    assert by_round[ROUND + dt.timedelta(minutes=4)] == {pending}
    lateness = rows.filter(pl.col("status") == late).group_by("round_ts").agg((pl.col("predicted_at") - pl.col("round_ts")).first().dt.total_seconds().alias("s"))
    assert dict(lateness.iter_rows()) == {ROUND + dt.timedelta(minutes=m): 242 - 60 * m for m in (1, 2, 3)}
    assert rows.filter(pl.col("status") == late)["value"].is_not_null().all()  # the models were asked
    assert rows["prediction_id"].n_unique() == rows.height


def test_the_cutoff_is_a_contract_setting_and_late_rows_are_never_scored(home):
    from coordinator_dagster.scoring.scores import score_predictions

    asked = ROUND + dt.timedelta(seconds=40)
    ingest(home, asked)
    contract = default_contract().model_copy(update={"late_cutoff_seconds": 30})
    runner = InProcessModelRunner(timeout_seconds=5.0)
    store = Lake.for_contract(home, contract)
    RoundEngine(store, contract, 60, lambda: runner.open(contract.output_type), clock=lambda: asked).step()
    rows = store.read("predictions", HOUR_KEY)
    assert set(rows["status"]) == {PredictionStatus.LATE.value}  # 40 s after the round, cutoff 30 s
    truth_time = ROUND + dt.timedelta(minutes=3)
    ingest(home, truth_time)
    feed = store.read("feed_records", HOUR_KEY)
    scores = score_predictions(contract, rows, store.read("inputs", HOUR_KEY), feed, truth_time)
    assert scores.is_empty()  # the late track is never scored into the ranking
    from coordinator_dagster.contracts import CrunchContract

    with pytest.raises(ValueError, match="late_cutoff_seconds"):
        CrunchContract(late_cutoff_seconds=0)


class CrashingReporter(DagsterReporter):
    def report(self, table, partition, description, metadata):
        raise KeyboardInterrupt("the process died before reporting")


def test_a_crash_between_writing_and_reporting_is_reported_at_the_next_start(home, instance):
    now = ROUND + dt.timedelta(seconds=2)
    ingest(home, now)
    crashing = engine(home, now, CrashingReporter(instance))
    with pytest.raises(KeyboardInterrupt):
        crashing.step()
    assert predictions(home).height == 6  # written, not reported
    assert reports(instance, "predictions") == [] and len(Outbox(home / "engine").entries()) == 1

    restarted = engine(home, now, DagsterReporter(instance))  # start() repairs
    [event] = reports(instance, "predictions")
    assert event.metadata[ROUND_KEY].value == "2026-11-20T10:20:00Z"
    assert event.metadata["repaired_after_restart"].value is True
    assert event.metadata["new_rows"].value == 6
    assert len(reports(instance, "inputs")) == 1
    assert Outbox(home / "engine").entries() == []
    assert restarted.step() == [] and predictions(home).height == 6  # nothing predicted twice

    # A crash after the report but before the entry was dropped: the next start sees the report
    # in Dagster and does not report again.
    Outbox(home / "engine").put(Entry("2026-11-20T10:20:00Z", HOUR_KEY, ["btc-60s@2026-11-20T10:20:00Z"], {}))
    engine(home, now, DagsterReporter(instance))
    assert len(reports(instance, "predictions")) == 1 and len(reports(instance, "inputs")) == 1
    assert Outbox(home / "engine").entries() == []


def test_an_entry_whose_write_never_happened_is_dropped_and_the_round_predicted(home, instance):
    now = ROUND + dt.timedelta(seconds=2)
    ingest(home, now)
    Outbox(home / "engine").put(Entry("2026-11-20T10:20:00Z", HOUR_KEY, ["btc-60s@2026-11-20T10:20:00Z"], {}))
    restarted = engine(home, now, DagsterReporter(instance))
    assert reports(instance, "predictions") == []
    assert restarted.step() == [ROUND]
    assert len(reports(instance, "predictions")) == 1


def sensor_tick(home, now, cursor=None):
    from sensors import predict_sensor

    (home / "engine").mkdir(parents=True, exist_ok=True)
    beat = home / "engine" / "heartbeat"
    beat.touch()
    # An engine that beat just now, and still counts as alive however slowly the sensor's
    # evaluation below gets going on a busy machine.
    later = time.time() + 60
    os.utime(beat, (later, later))
    with dg.instance_for_test() as instance:
        return predict_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=pipeline_resources(home, now)))


def test_the_predict_sensor_leaves_live_rounds_to_a_live_engine_and_falls_back_after_its_grace(home):
    now = ROUND + dt.timedelta(seconds=2)
    ingest(home, now)
    waiting = sensor_tick(home, now)
    assert not getattr(waiting, "run_requests", None)
    assert "is the round engine's" in (waiting.skip_message if isinstance(waiting, dg.SkipReason) else waiting.skip_reason.skip_message)
    # Not recorded 25 s after the round: the sensor's run records it (the fallback).
    [request] = sensor_tick(home, ROUND + dt.timedelta(seconds=25)).run_requests
    assert request.run_key == "predict:2026-11-20T10:20:00Z"
    # Recorded by the engine: passed over, and the cursor moves past it.
    engine(home, now).step()
    passed = sensor_tick(home, ROUND + dt.timedelta(seconds=25))
    assert not passed.run_requests
    assert '"btc-60s": "2026-11-20T10:20:00Z"' in passed.cursor


def test_rounds_are_appended_as_segments_and_the_hour_compacted_once_over(home):
    now = ROUND + dt.timedelta(seconds=2)
    ingest(home, now)
    engine(home, now).step()
    later = now + dt.timedelta(minutes=1)
    ingest(home, later)
    running = engine(home, later)
    running.step()
    store = Lake.for_contract(home, default_contract())
    folder = store.partition_path("predictions", HOUR_KEY).parent
    assert sorted(p.name.startswith("seg-") for p in folder.iterdir()) == [True, True]  # one file per round
    before = predictions(home).sort("prediction_id")
    running.clock = lambda: HOUR + dt.timedelta(hours=1, minutes=3)  # the hour is over
    running.step()
    assert [p.name for p in folder.iterdir()] == ["data.parquet"]
    assert [p.name for p in store.partition_path("inputs", HOUR_KEY).parent.iterdir()] == ["data.parquet"]
    assert predictions(home).sort("prediction_id").equals(before)


def test_a_first_start_before_the_closing_record_lands_still_predicts_that_round(home):
    # A home with no predictions; the engine's first pass comes before the record closing the
    # round due now has landed (the first start of `make run`).
    now = ROUND + dt.timedelta(seconds=2)
    running = engine(home, now)
    assert running.step() == []
    # The record lands only after the clock has moved into the next round: both are recorded.
    later = ROUND + dt.timedelta(minutes=1, seconds=2)
    ingest(home, later)
    running.clock = lambda: later
    assert running.step() == [ROUND, ROUND + dt.timedelta(minutes=1)]
    rows = predictions(home)
    assert set(rows["round_ts"]) == {ROUND, ROUND + dt.timedelta(minutes=1)}
    assert rows.filter(pl.col("round_ts") == ROUND).height == 6
    assert running.step() == []


def test_a_first_round_whose_record_never_lands_does_not_hold_up_the_next(home):
    # The feed began after the first round due: its closing record (10:19) never lands, but the
    # next round's (10:20) does; that round is recorded, and the engine goes on from it.
    store = Lake.for_contract(home, default_contract())
    first = ROUND - dt.timedelta(minutes=1, seconds=-2)
    running = engine(home, first)
    assert running.step() == []
    ingest(home, ROUND + dt.timedelta(seconds=2))
    store.write("feed_records", store.read("feed_records", HOUR_KEY).filter(pl.col("ts_event") != ROUND - dt.timedelta(minutes=2)), HOUR_KEY)
    running.clock = lambda: ROUND + dt.timedelta(seconds=2)
    assert running.step() == [ROUND]
    assert set(predictions(home)["round_ts"]) == {ROUND}


def test_an_open_hour_is_compacted_every_few_rounds_and_its_rounds_stay_recorded_once(home, monkeypatch):
    from coordinator_dagster.engine import hour_appends

    monkeypatch.setattr(hour_appends, "COMPACT_SEGMENTS", 2)
    store = Lake.for_contract(home, default_contract())
    folder = store.partition_path("predictions", HOUR_KEY).parent
    running = None
    for minute in range(3):
        now = ROUND + dt.timedelta(minutes=minute, seconds=2)
        ingest(home, now)
        if running is None:
            running = engine(home, now)
        running.clock = lambda now=now: now
        assert running.step() == [ROUND + dt.timedelta(minutes=minute)]
        if minute == 1:  # two rounds appended: the hour, still open, is one file
            assert [p.name for p in folder.iterdir()] == ["data.parquet"]
            assert [p.name for p in store.partition_path("inputs", HOUR_KEY).parent.iterdir()] == ["data.parquet"]
    # The third round went on as segments (the compacted file kept as the first of them).
    assert sorted(p.name.startswith("seg-") for p in folder.iterdir()) == [True, True]
    rows = predictions(home)
    assert rows.height == 3 * 6 and set(rows.group_by("round_ts", "model_id", "scope_key").len()["len"]) == {1}
    assert running.step() == []  # nothing asked again: the ids it held survived the compaction
    restarted = engine(home, now)
    assert restarted.step() == [] and predictions(home).height == 3 * 6


def test_the_next_round_is_recorded_while_the_previous_one_is_still_being_reported(home, instance):
    import threading

    class SlowReporter(DagsterReporter):
        """Holds every report until released (a busy instance)."""

        release = threading.Event()

        def report(self, table, partition, description, metadata):
            assert self.release.wait(60)
            super().report(table, partition, description, metadata)

    now = ROUND + dt.timedelta(seconds=2)
    ingest(home, now)
    running = engine(home, now, SlowReporter(instance))
    running.reports.start()  # as `serve` does
    try:
        assert running.step() == [ROUND]
        later = now + dt.timedelta(minutes=1)
        ingest(home, later)
        running.clock = lambda: later
        assert running.step() == [ROUND + dt.timedelta(minutes=1)]  # not held by round 10:20's report
        assert predictions(home).height == 12 and reports(instance, "predictions") == []
        assert len(Outbox(home / "engine").entries()) == 2  # both still to report: a crash now repairs both
    finally:
        SlowReporter.release.set()
        running.reports.stop()
    assert sorted(r.metadata[ROUND_KEY].value for r in reports(instance, "predictions")) == ["2026-11-20T10:20:00Z", "2026-11-20T10:21:00Z"]
    assert Outbox(home / "engine").entries() == []
    assert [r["round"] for r in recent_timings(home / "engine")] == ["2026-11-20T10:20:00Z", "2026-11-20T10:21:00Z"]


def test_a_changed_models_manifest_opens_the_runner_again(home, tmp_path):
    import json

    def manifest(*names):
        entries = [
            {"model_id": name, "name": name, "cruncher": f"c-{name}", "cruncher_index": i, "entrypoint": "coordinator_dagster.models.examples:MomentumTracker"}
            for i, name in enumerate(names)
        ]
        path.write_text(json.dumps(entries))
        os.utime(path, ns=(time.time_ns(), time.time_ns() + len(names)))  # a new version even within one clock tick

    path = tmp_path / "models.json"
    manifest("alpha")
    contract = default_contract()
    runner = InProcessModelRunner(timeout_seconds=5.0, manifest=str(path))
    now = ROUND + dt.timedelta(seconds=2)
    ingest(home, now)
    running = RoundEngine(Lake.for_contract(home, contract), contract, 60, lambda: runner.open(contract.output_type), clock=lambda: now, manifest=path)
    running.start()
    assert running.step() == [ROUND]
    manifest("alpha", "beta")  # a model joins while the engine runs
    later = now + dt.timedelta(minutes=1)
    ingest(home, later)
    running.clock = lambda: later
    assert running.step() == [ROUND + dt.timedelta(minutes=1)]
    rows = predictions(home)
    assert sorted(rows.filter(pl.col("round_ts") == ROUND)["model_id"].unique()) == ["alpha"]
    assert sorted(rows.filter(pl.col("round_ts") == ROUND + dt.timedelta(minutes=1))["model_id"].unique()) == ["alpha", "beta"]
    assert sorted(Lake.for_contract(home, contract).read("models")["model_id"]) == ["alpha", "beta"]  # registered
