"""A density contract live through Dagster: the `density_predictions` and `density_round_scores`
assets materialized over a lake of synthetic one-minute candles with in-house trackers (one good,
one answering invalid densities, one that never answers in time), the density sensors' plans,
and the definitions a contract with prediction profiles assembles."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.density import density_predictions, density_round_scores
from assets.feeds import feed_records
from assets.group_leaderboard import build_group_leaderboard_asset
from coordinator_dagster import density_pipeline
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.definitions import build_defs
from coordinator_dagster.density_schedule import plan_density_predict_runs, plan_density_score_runs
from coordinator_dagster.feeds.synthetic import generate_records
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG
from coordinator_dagster.prediction_profiles import PredictionProfile
from coordinator_dagster.scoring.density.rounds import round_scores
from coordinator_dagster.settings import Settings
from coordinator_dagster.windows import window_keys_between
from resources import ClockResource, LakeResource, SyntheticFeed
from resources.density import DensityTrackers
from tests.density_trackers import RELEASE, TICKS

H = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
KEY = "2026-11-20-10:00"
MIN = dt.timedelta(minutes=1)
# Two rounds an hour per asset (every 30 min), 10-minute horizon at 1 and 5-minute steps; an hour
# of warm-up history at one price a minute; 2 s to answer.
PROFILE = PredictionProfile(name="10m", assets=["BTC", "ETH"], horizon_seconds=600, steps=[60, 300], interval_seconds=1800,
                            deadline_seconds=2.0, history_days=0)
CONTRACT = CrunchContract(prediction_profiles=[PROFILE], aggregation={"windows": {"score_recent": 24}, "ranking_key": "score_recent"})
@pytest.fixture(scope="module", autouse=True)
def _release_slow_tracker():
    yield
    RELEASE.set()


def _manifest(path, workers=False):
    """The four trackers; for worker processes by their folder (what a sandbox lets them see)."""
    entries = [("narrow", "Narrow"), ("wide", "Wide"), ("invalid", "Invalid"), ("slow", "Slow")]
    where = {"path": str(Path(__file__).parent)} if workers else {}
    module = "density_trackers" if workers else "tests.density_trackers"
    path.write_text(json.dumps([
        {"model_id": m, "name": m, "cruncher": m, "cruncher_index": i, "entrypoint": f"{module}:{cls}", **where} for i, (m, cls) in enumerate(entries)
    ]))
    return str(path)


def _lake_with_candles(home, start, end) -> Lake:
    store = Lake.for_contract(home, CONTRACT)
    frame = pl.concat([generate_records(seed=11, subject=s, kind="candle", granularity="1m", start=start, end=end) for s in ("BTC", "ETH")])
    store.write_windows("feed_records", frame, "ts_event", window_keys_between(start, end))
    return store


def _resources(home, manifest, now, in_process=True):
    return {
        "lake": LakeResource(home=str(home)), "contract": CONTRACT, "clock": ClockResource(fixed_now=now.isoformat()),
        "density_trackers": DensityTrackers(manifest=manifest, in_process=in_process), "feed": SyntheticFeed(subjects=["BTC", "ETH"], seed=11),
    }


ASSETS = [feed_records, density_predictions, density_round_scores, build_group_leaderboard_asset(density_round_scores)]


def _materialize(resources, selection, key=KEY, tags=None):
    return dg.materialize(ASSETS, selection=selection, resources=resources, partition_key=key, tags=tags or {})


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """Candles from 09:00 to 12:00; the hour 10:00 predicted at 11:00 (both rounds due), then
    scored at 12:00 (their truths, 10:10 and 10:40, have landed)."""
    root = tmp_path_factory.mktemp("density")
    home, manifest = root / "home", _manifest(root / "manifest.json")
    store = _lake_with_candles(home, H - dt.timedelta(hours=1), H + dt.timedelta(hours=2))
    first = _materialize(_resources(home, manifest, H + dt.timedelta(hours=1)), ["density_predictions"])
    predicted = store.read("density_predictions", KEY)
    again = _materialize(_resources(home, manifest, H + dt.timedelta(hours=1, minutes=30)), ["density_predictions"])
    _materialize(_resources(home, manifest, H + dt.timedelta(hours=2)), ["density_round_scores", "group_leaderboard"])
    return store, first, predicted, again


def test_every_round_is_asked_once_with_each_answer_recorded(lake):
    store, first, predicted, again = lake
    # 2 rounds × 2 assets × 4 models, each once: the second materialization adds nothing.
    assert predicted.height == 16
    assert predicted.select("model_id", "subject", "performed_at").n_unique() == 16
    assert store.read("density_predictions", KEY).equals(predicted)
    assert again.asset_materializations_for_node("density_predictions")[0].metadata["new_predictions"].value == 0
    by_model = dict(predicted.group_by("model_id").agg(pl.col("status").unique().sort().str.join(",")).iter_rows())
    assert by_model == {"narrow": "PENDING", "wide": "PENDING", "invalid": "FAILED", "slow": "ABSENT"}
    reasons = predicted.filter(pl.col("model_id") == "invalid")["failed_reason"].unique().to_list()
    assert len(reasons) == 1 and "scale" in reasons[0]
    slow = predicted.filter(pl.col("model_id") == "slow").sort("performed_at", "subject")["failed_reason"].to_list()
    assert slow[0] == "no answer within 2 s" and set(slow[1:]) == {"still answering an earlier round"}
    valid = predicted.filter(pl.col("status") == "PENDING")
    # Densities stored checked and as JSON per step: 10 one-minute and 2 five-minute intervals.
    assert {k: len(v) for k, v in json.loads(valid["densities"][0]).items()} == {"60": 10, "300": 2}
    assert predicted.filter(pl.col("status") != "PENDING")["densities"].null_count() == 8
    # Asked an hour after the first round, half an hour after the second (a replay, not live).
    assert sorted(predicted["lateness_seconds"].unique().to_list()) == [1800.0, 3600.0]
    assert valid["answer_seconds"].null_count() == 0 and predicted.filter(pl.col("model_id") == "slow")["answer_seconds"].null_count() == 4


def test_a_tracker_gets_the_warm_up_history_on_its_first_tick_then_only_new_prices(lake):
    # history_days=0: the warm-up is the price at the round; the second round's tick carries the
    # 30 prices since the first (one per minute, two assets).
    narrow = [n for name, n in TICKS if name == "Narrow"][:2]
    assert narrow == [2, 60]


def test_scores_equal_the_density_scoring_of_the_recorded_answers(lake):
    store, *_ = lake
    scores = store.read("density_round_scores", KEY)
    prices = density_pipeline.feed_prices(store.read_window("feed_records", H - dt.timedelta(hours=1), H + dt.timedelta(hours=2)))
    expected = round_scores(density_pipeline.row_answers(store.read("density_predictions", KEY)), prices)
    assert scores.equals(expected)
    assert scores.height == 16
    statuses = dict(scores.group_by("model_id").agg(pl.col("status").unique().sort().str.join(",")).iter_rows())
    assert statuses == {"narrow": "SCORED", "wide": "SCORED", "invalid": "FAILED", "slow": "ABSENT"}
    assert scores.filter(pl.col("status") != "SCORED")["score"].unique().to_list() == [0.0]
    assert scores.group_by("performed_at", "subject").agg(pl.col("score").max())["score"].unique().to_list() == [1.0]


def test_the_leaderboard_by_group_reads_the_density_scores(lake):
    store, *_ = lake
    board = store.read("group_leaderboard")
    assert set(board["model_id"]) == {"narrow", "wide", "invalid", "slow"}
    assert set(board["group_kind"]) >= {"horizon", "param"}


def test_a_round_whose_truth_has_not_landed_is_not_scored(tmp_path):
    store = _lake_with_candles(tmp_path / "home", H - dt.timedelta(hours=1), H + dt.timedelta(minutes=30))
    manifest = _manifest(tmp_path / "manifest.json")
    # Prices up to 10:30: both rounds are asked, but only 10:00's truth (10:10) has landed.
    _materialize(_resources(tmp_path / "home", manifest, H + dt.timedelta(minutes=45)), ["density_predictions", "density_round_scores"])
    assert store.read("density_predictions", KEY)["performed_at"].unique().sort().to_list() == [H, H + dt.timedelta(minutes=30)]
    assert store.read("density_round_scores", KEY)["performed_at"].unique().to_list() == [H]


def test_a_live_run_records_rounds_it_passed_over_as_missed(tmp_path):
    store = _lake_with_candles(tmp_path / "home", H - dt.timedelta(hours=1), H + dt.timedelta(hours=1))
    manifest = _manifest(tmp_path / "manifest.json")
    # A live run for 10:40: the 10:00 round is more than one interval (30 min) older, so it is
    # recorded as missed; 10:30's is asked.
    _materialize(_resources(tmp_path / "home", manifest, H + dt.timedelta(minutes=40)), ["density_predictions"],
                 tags={LIVE_ROUND_TAG: "2026-11-20T10:40:00Z"})
    rows = store.read("density_predictions", KEY)
    assert rows.filter(pl.col("performed_at") == H)["status"].unique().to_list() == ["ABSENT"]
    assert rows.filter(pl.col("performed_at") == H)["failed_reason"][0].startswith("missed")
    asked = rows.filter(pl.col("performed_at") == H + dt.timedelta(minutes=30))
    assert dict(asked.group_by("model_id").agg(pl.col("status").first()).iter_rows())["narrow"] == "PENDING"


def test_a_live_run_asks_its_own_round_when_started_within_the_second(tmp_path):
    store = _lake_with_candles(tmp_path / "home", H - dt.timedelta(hours=1), H + dt.timedelta(hours=1))
    manifest = _manifest(tmp_path / "manifest.json")
    now = H + dt.timedelta(minutes=30, microseconds=500_000)
    _materialize(_resources(tmp_path / "home", manifest, now), ["density_predictions"], tags={LIVE_ROUND_TAG: "2026-11-20T10:30:00Z"})
    rows = store.read("density_predictions", KEY)
    assert rows.filter(pl.col("model_id") == "narrow").sort("performed_at")["status"].to_list() == ["PENDING"] * 4


# ---- sensors' plans ------------------------------------------------------------------------------


def test_the_predict_plan_requests_each_round_once_and_catches_up_after_a_restart(tmp_path):
    store = _lake_with_candles(tmp_path / "home", H - dt.timedelta(hours=1), H + dt.timedelta(hours=4, minutes=1))
    waiting = plan_density_predict_runs(CONTRACT, store, H + dt.timedelta(hours=5), None)
    assert waiting.runs == [] and "waits for prices of BTC, ETH" in waiting.skip_reason
    first = plan_density_predict_runs(CONTRACT, store, H + dt.timedelta(minutes=5), None)
    assert [(r.run_key, r.partition_key, r.tags[LIVE_ROUND_TAG]) for r in first.runs] == [
        ("density-predict:2026-11-20T10:00:00Z", KEY, "2026-11-20T10:00:00Z")
    ]
    assert plan_density_predict_runs(CONTRACT, store, H + dt.timedelta(minutes=29), first.cursor).runs == []
    # Down from 10:05 to 13:10: the live round 13:00 and one catch-up run per hour passed over.
    after = plan_density_predict_runs(CONTRACT, store, H + dt.timedelta(hours=3, minutes=10), first.cursor)
    assert [(r.run_key, r.partition_key) for r in after.runs] == [
        ("density-predict:2026-11-20T13:00:00Z", "2026-11-20-13:00"),
        ("density-predict-catch-up:2026-11-20-10:00", KEY),
        ("density-predict-catch-up:2026-11-20-11:00", "2026-11-20-11:00"),
        ("density-predict-catch-up:2026-11-20-12:00", "2026-11-20-12:00"),
    ]
    assert {r.tags[LIVE_ROUND_TAG] for r in after.runs} == {"2026-11-20T13:00:00Z"}
    assert plan_density_predict_runs(CONTRACT, store, H + dt.timedelta(hours=3, minutes=20), after.cursor).runs == []


def test_the_score_plan_requests_an_hour_as_its_truths_land_and_never_twice(tmp_path):
    home = tmp_path / "home"
    store = _lake_with_candles(home, H - dt.timedelta(hours=1), H + dt.timedelta(hours=1))
    manifest = _manifest(tmp_path / "manifest.json")
    cursor = json.dumps({"scored": "2026-11-20T09:59:00Z"})
    assert plan_density_score_runs(CONTRACT, store, H + dt.timedelta(minutes=20), cursor).runs == []  # nothing recorded yet
    _materialize(_resources(home, manifest, H + dt.timedelta(minutes=45)), ["density_predictions"])
    plan = plan_density_score_runs(CONTRACT, store, H + dt.timedelta(minutes=45), cursor)
    # Truths at 10:10 and 10:40 have landed: one run for their hour, named by the newer.
    assert [(r.run_key, r.partition_key) for r in plan.runs] == [("density-score:2026-11-20-10:00:2026-11-20T10:40:00Z", KEY)]
    assert plan_density_score_runs(CONTRACT, store, H + dt.timedelta(minutes=59), plan.cursor).runs == []
    # A first start: the day before holds no predictions (nor prices): it is passed over, not waited on.
    first = plan_density_score_runs(CONTRACT, store, H + dt.timedelta(minutes=45), None)
    assert [r.run_key for r in first.runs] == ["density-score:2026-11-20-10:00:2026-11-20T10:40:00Z"]
    # A truth whose prices have not landed waits, and the cursor does not pass it.
    _materialize(_resources(home, manifest, H + dt.timedelta(hours=1, minutes=45)), ["density_predictions"], key="2026-11-20-11:00")
    late = plan_density_score_runs(CONTRACT, store, H + dt.timedelta(hours=2), plan.cursor)
    assert late.runs == [] and "waits for prices" in late.skip_reason and late.cursor is None


# ---- the assembled definitions ---------------------------------------------------------------------


def test_a_contract_with_profiles_assembles_the_density_pipeline(tmp_path):
    defs = build_defs(settings=Settings(home=tmp_path / "home"), contract=CONTRACT)
    graph = defs.resolve_asset_graph()
    parents = {k: {p.to_user_string() for p in graph.get(dg.AssetKey(k)).parent_keys} for k in ("group_leaderboard", "checkpoints", "density_round_scores")}
    assert parents == {"group_leaderboard": {"density_round_scores"}, "checkpoints": {"density_round_scores"},
                       "density_round_scores": {"density_predictions", "feed_records"}}
    assert not graph.has(dg.AssetKey("predictions"))
    assert {s.name for s in defs.sensors} == {"density_predict_sensor", "density_score_sensor"}
    assert {"density_predict_job", "density_score_job", "ingest_job", "checkpoint_job"} <= {j.name for j in defs.resolve_all_job_defs()}


def test_the_density_predict_sensor_requests_the_run_of_a_due_round(tmp_path):
    home = tmp_path / "home"
    _lake_with_candles(home, H - dt.timedelta(hours=1), H + dt.timedelta(minutes=10))
    defs = build_defs(settings=Settings(home=home), contract=CONTRACT, resource_overrides={"clock": ClockResource(fixed_now=(H + dt.timedelta(minutes=1)).isoformat())})
    sensor = defs.resolve_sensor_def("density_predict_sensor")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def(), resources=defs.resources)
        result = sensor(context)
    assert [(r.run_key, r.partition_key) for r in result.run_requests] == [("density-predict:2026-11-20T10:00:00Z", KEY)]


# ---- trackers in worker processes (the default) -------------------------------------------------


@pytest.mark.process
def test_trackers_in_worker_processes_answer_fail_and_miss_the_deadline_with_reasons(tmp_path):
    """The same four trackers, each in its own worker process: the slow one's worker is killed at
    the deadline and replaced, so its next tick carries the warm-up history again."""
    home = tmp_path / "home"
    store = _lake_with_candles(home, H - dt.timedelta(hours=1), H + dt.timedelta(hours=1))
    manifest = _manifest(tmp_path / "manifest.json", workers=True)
    result = _materialize(_resources(home, manifest, H + dt.timedelta(hours=1), in_process=False), ["density_predictions"])
    rows = store.read("density_predictions", KEY).sort("performed_at", "subject")
    assert rows.height == 16
    by_model = dict(rows.group_by("model_id").agg(pl.col("status").unique().sort().str.join(",")).iter_rows())
    assert by_model == {"narrow": "PENDING", "wide": "PENDING", "invalid": "FAILED", "slow": "ABSENT"}
    assert set(rows.filter(pl.col("model_id") == "slow")["failed_reason"]) == {"no answer within 2 s (worker killed and restarted)"}
    assert "scale" in rows.filter(pl.col("model_id") == "invalid")["failed_reason"][0]
    # Prices seen by the time of each answer (the density's loc): the warm-up tick (one price per
    # asset at 10:00), then 30 more per asset by 10:30.
    seen = [json.loads(d)["60"][0]["params"]["loc"] for d in rows.filter(pl.col("model_id") == "narrow")["densities"]]
    assert seen == [2.0, 2.0, 62.0, 62.0]
    warm = result.asset_materializations_for_node("density_predictions")[0].metadata["warm_up_prices"].value
    assert warm == {"narrow": 2, "wide": 2, "invalid": 2, "slow": 2}


@pytest.mark.process
def test_a_worker_replaced_after_a_timeout_is_warmed_up_again(tmp_path):
    from coordinator_dagster.models.density_workers import WorkerDensityDriver
    from coordinator_dagster.models.manifest import load_manifest
    from coordinator_dagster.models.worker_handle import PoolSettings

    store = _lake_with_candles(tmp_path / "home", H - dt.timedelta(hours=1), H + dt.timedelta(hours=1))
    prices = density_pipeline.read_prices(store, H - dt.timedelta(hours=1), H + dt.timedelta(hours=1))
    profile = PROFILE.model_copy(update={"history_days": 0})
    driver = WorkerDensityDriver(load_manifest(_manifest(tmp_path / "manifest.json", workers=True)), [profile], PoolSettings())
    try:
        driver.tick(prices, H)
        driver.ask(profile, "BTC", H)  # slow misses the deadline: its worker is replaced
        driver.tick(prices, H + dt.timedelta(minutes=30))
    finally:
        driver.close()
    sent = {(m, t): n for m, t, n in driver.ticks}
    assert sent[("narrow", H + dt.timedelta(minutes=30))] == 60  # the 30 new minutes, two assets
    assert sent[("slow", H + dt.timedelta(minutes=30))] == 2  # a fresh worker: the warm-up again
