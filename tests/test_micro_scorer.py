"""The round engine's micro-batch scorer (ROUND_ENGINE_SCORING): it writes what the score,
snapshot and leaderboard assets' functions write, never scores a round twice, and the score
sensor's plan leaves the rounds it scored (or, alive, will score) to it."""

import datetime as dt
import shutil
import threading
import time

import polars as pl

from coordinator_dagster.contracts import default_contract
from coordinator_dagster.engine.micro_scorer import MicroScorer, engine_scoring
from coordinator_dagster.feeds.synthetic import generate_records
from coordinator_dagster.lake import batches
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.round_schedule import plan_score_runs
from coordinator_dagster.scoring_batches import build_leaderboard, score_window, snapshot_window
from coordinator_dagster.windows import window_keys_between
from tests.test_scoring_batches import START, land, register_models

HOUR = dt.timedelta(hours=1)
NOW = START + 2 * HOUR + dt.timedelta(seconds=30)  # rounds up to 01:59 have their truth


class Recorder:
    def __init__(self):
        self.calls = []

    def report(self, table, partition, description, metadata):
        self.calls.append((table, partition, metadata))


def make_lake(home) -> Lake:
    """Two hours of BTC rounds (four models), the BTC and ETH feed around them, the models."""
    lake = Lake.for_contract(home, default_contract())
    for seed, subject in ((7, "BTC"), (8, "ETH")):
        feed = generate_records(seed=seed, subject=subject, kind="candle", granularity="1m", start=START - HOUR, end=START + 4 * HOUR)
        existing = lake.read_window("feed_records", START - HOUR, START + 4 * HOUR)
        lake.write_windows("feed_records", pl.concat([existing, feed], how="vertical_relaxed"), "ts_event", window_keys_between(START - HOUR, START + 4 * HOUR))
    land(lake, range(0, 2))
    register_models(lake)
    return lake


def test_the_engine_scores_what_the_assets_would_and_the_sensor_then_has_nothing_to_score(tmp_path):
    contract = default_contract()
    lake = make_lake(tmp_path / "node")
    shutil.copytree(tmp_path / "node", tmp_path / "twin")
    twin = Lake.for_contract(tmp_path / "twin", contract)

    reporter = Recorder()
    scorer = MicroScorer(lake, contract, 60, reporter, first_hour=START)
    result = scorer.step(NOW)
    hours = window_keys_between(START, START + 2 * HOUR)
    assert result is not None and result.keys == hours
    assert result.scores.filter(pl.col("success")).height > 0

    # The assets' functions over the same data and clock give the same files.
    for key in hours:
        score_window(twin, contract, START + hours.index(key) * HOUR, START + (hours.index(key) + 1) * HOUR, NOW, 60)
        snapshot_window(twin, contract, START + hours.index(key) * HOUR, START + (hours.index(key) + 1) * HOUR)
    build_leaderboard(twin, contract, NOW)
    for key in hours:
        assert lake.read("scores", key).equals(twin.read("scores", key))
        assert lake.read("snapshots", key).equals(twin.read("snapshots", key))
    assert lake.read("leaderboard").equals(twin.read("leaderboard"))
    reported = {(table, partition) for table, partition, _ in reporter.calls}
    assert reported == {("scores", k) for k in hours} | {("snapshots", k) for k in hours} | {("leaderboard", None)}
    scored_rows = sum(m["rows"] for t, _, m in reporter.calls if t == "scores")
    assert scored_rows == result.scores.height

    # A second pass at the same moment writes and reports nothing.
    files = {p: p.stat().st_mtime_ns for p in lake.files("scores")}
    assert scorer.step(NOW) is None
    assert {p: p.stat().st_mtime_ns for p in lake.files("scores")} == files
    assert len(reporter.calls) == 5

    # A restarted scorer keeps its cursor: still nothing to score.
    assert MicroScorer(lake, contract, 60, Recorder(), first_hour=START).step(NOW) is None

    # The sensor's plan passes over the engine's rounds (its cursor moves past them).
    plan = plan_score_runs(contract, lake, 60, NOW, None, engine=engine_scoring(lake.home))
    assert plan.runs == []
    assert "scored by the round engine" in plan.skip_reason
    assert plan.cursor is not None
    # Without the engine, the same tick would have scored those rounds.
    assert plan_score_runs(contract, lake, 60, NOW, None).runs


def test_the_sensor_leaves_new_rounds_to_a_live_scorer_and_takes_over_from_a_dead_one(tmp_path):
    contract = default_contract()
    lake = make_lake(tmp_path)
    MicroScorer(lake, contract, 60, first_hour=START).step(NOW)
    later = NOW + dt.timedelta(minutes=1)  # round 02:00 is now due (its truth has landed)
    alive = engine_scoring(lake.home)
    assert alive[1]
    waiting = plan_score_runs(contract, lake, 60, later, None, engine=alive)
    assert waiting.runs == [] and "round engine's to score" in waiting.skip_reason
    dead = engine_scoring(lake.home, now=time.time() + 3600)
    assert not dead[1]
    taken = plan_score_runs(contract, lake, 60, later, None, engine=dead)
    # Only the round the engine did not score; never one it did.
    assert [r.run_key for r in taken.runs] == ["score:2026-11-15T02:00:00Z"]


def test_the_engine_loop_scores_and_reports_to_dagster_what_the_score_assets_materialize(home, tmp_path):
    """The serve loop (ROUND_ENGINE_SCORING) on a real instance: the scored hour equals a Dagster
    run of the scores, snapshots and leaderboard assets over the same lake and clock."""
    import dagster as dg

    from assets import default_assets
    from coordinator_dagster.cli.rounds import DagsterReporter
    from tests.conftest import HOUR as HOUR_START, HOUR_KEY, pipeline_resources
    from tests.test_round_engine import ROUND, engine, ingest

    contract = default_contract()
    ingest(home, ROUND + dt.timedelta(seconds=2))
    engine(home, ROUND + dt.timedelta(seconds=2)).step()  # round 10:20 recorded
    now = ROUND + dt.timedelta(seconds=62)  # its truth (the 10:20 candle) has closed
    ingest(home, now)
    # The engine appends rounds as segment files: batched reads see them as `read_window` does.
    store = Lake.for_contract(home, contract)
    assert batches.read_window_files(store, "predictions", HOUR_START, HOUR_START + HOUR).equals(store.read_window("predictions", HOUR_START, HOUR_START + HOUR))
    assert batches.read_window_files(store, "predictions", HOUR_START, HOUR_START + HOUR).height == 6
    with dg.instance_for_test() as instance:
        live = engine(home, now, DagsterReporter(instance))
        stop = threading.Event()
        inner = MicroScorer(live.lake, contract, 60, DagsterReporter(instance), first_hour=HOUR_START)

        class OnePass:
            every_seconds = 0.0

            def step(self, at):
                try:
                    return inner.step(at)
                finally:
                    stop.set()

        live.scorer = OnePass()
        live.serve(stop)
        events = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("scores"), asset_partitions=[HOUR_KEY]), limit=10).records
        assert [e.asset_materialization.metadata["written_by"].value for e in events] == ["round engine"]
        assert instance.fetch_materializations(dg.AssetKey("leaderboard"), limit=10).records
    scored = Lake.for_contract(home, contract).read("scores", HOUR_KEY)
    assert set(scored.filter(pl.col("success"))["round_ts"]) == {ROUND}

    shutil.copytree(home, tmp_path / "twin")
    resources = pipeline_resources(tmp_path / "twin", now)
    dg.materialize(default_assets, selection=["scores", "snapshots"], resources=resources, partition_key=HOUR_KEY)
    dg.materialize(default_assets, selection=["leaderboard"], resources=resources)
    twin = Lake.for_contract(tmp_path / "twin", contract)
    for table in ("scores", "snapshots"):
        assert twin.read(table, HOUR_KEY).equals(Lake.for_contract(home, contract).read(table, HOUR_KEY)), table
    assert twin.read("leaderboard").equals(Lake.for_contract(home, contract).read("leaderboard"))
