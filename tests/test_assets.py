"""Each asset materialized in-process into a lake under tmp_path, with the real resources."""

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets import default_assets
from coordinator_dagster.lake import schemas
from coordinator_dagster.contracts import default_contract
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake.store import Lake
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources

PREV_KEY = "2026-11-20-09:00"
NEXT_KEY = "2026-11-20-11:00"
WEEK_KEY = "2026-11-15"
NOW = HOUR + dt.timedelta(hours=3)


def run(resources, selection, partition_key=None, tags=None, raise_on_error=True):
    return dg.materialize(
        default_assets, selection=selection, resources=resources, partition_key=partition_key, tags=tags, raise_on_error=raise_on_error
    )


def feed_range(resources, first, last):
    run(resources, ["feed_records"], tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Feed for 09:00–11:59, then every window asset for 10:00, then leaderboard and checkpoint.

    Built once per module and shared, so no test may write to it: tests that write take
    `pipeline_copy`, and `pipeline` fails any test after which the shared lake has changed.
    """
    home = tmp_path_factory.mktemp("pipeline") / "home"
    resources = pipeline_resources(home, NOW)
    feed_range(resources, PREV_KEY, NEXT_KEY)
    results = {
        "window": run(resources, ["inputs", "predictions", "scores", "snapshots"], HOUR_KEY),
        "leaderboard": run(resources, ["leaderboard"]),
        "checkpoint": run(resources, ["checkpoints"], WEEK_KEY),
    }
    return home, resources, Lake(home, default_contract().aggregation.windows), results


def lake_fingerprint(home: Path) -> dict[str, tuple[int, int, int]]:
    """Every file of a lake with its inode, size and modification time: an atomic replace changes
    the inode, an append adds a file."""
    return {str(p.relative_to(home)): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.fixture
def pipeline(built):
    """The shared pipeline, read-only: the test fails if it changed any file of the lake."""
    before = lake_fingerprint(built[0])
    yield built
    assert lake_fingerprint(built[0]) == before, "this test wrote to the shared pipeline lake: use pipeline_copy"


@pytest.fixture
def pipeline_copy(built, tmp_path):
    """A private copy of the pipeline's lake, with resources pointing at it, for tests that write."""
    home = tmp_path / "home"
    # The operator catalog names the original's files by absolute path: the copy builds its own.
    shutil.copytree(built[0], home, ignore=shutil.ignore_patterns("coordinator.duckdb", "catalog.json"))
    return home, pipeline_resources(home, NOW), Lake(home, default_contract().aggregation.windows), built[3]


def materialization_metadata(result, key):
    [event] = result.asset_materializations_for_node(key)
    return event.metadata


def test_feed_records_writes_the_window_and_is_idempotent(pipeline_copy):
    _, resources, lake, _ = pipeline_copy
    frame = lake.read("feed_records", HOUR_KEY)
    assert frame.height == 120  # 60 one-minute candles × BTC, ETH
    assert frame["ts_event"].min() == HOUR and frame["ts_event"].max() == HOUR + dt.timedelta(minutes=59)
    result = run(resources, ["feed_records"], HOUR_KEY)
    assert lake.read("feed_records", HOUR_KEY).equals(frame)
    metadata = materialization_metadata(result, "feed_records")
    assert metadata["dagster/row_count"].value == 120
    assert "| source |" in metadata["preview"].value


def test_live_window_holds_only_closed_candles(tmp_path):
    resources = pipeline_resources(tmp_path, HOUR + dt.timedelta(minutes=10, seconds=30))
    run(resources, ["feed_records"], HOUR_KEY)
    frame = Lake(tmp_path).read("feed_records", HOUR_KEY)
    assert frame.height == 20  # 10:00 … 10:09 closed by 10:10:30, for two subjects
    assert frame["ts_event"].max() == HOUR + dt.timedelta(minutes=9)


def test_window_assets_produce_the_competition(pipeline):
    _, _, lake, results = pipeline
    inputs = lake.read("inputs", HOUR_KEY)
    predictions = lake.read("predictions", HOUR_KEY)
    scores = lake.read("scores", HOUR_KEY)
    snapshots = lake.read("snapshots", HOUR_KEY)
    assert inputs.height == 120
    assert predictions.height == 360 and set(predictions["status"]) == {"PENDING"}
    assert scores.height == 360 and scores["success"].all()
    assert snapshots.height == 3 and snapshots["scored_count"].to_list() == [120, 120, 120]
    statuses = lake.query("SELECT status, count(*) AS n FROM predictions GROUP BY status")
    assert dict(statuses.iter_rows()) == {"SCORED": 360}
    assert dict(lake.query("SELECT status, count(*) AS n FROM inputs GROUP BY status").iter_rows()) == {"RESOLVED": 120}
    metadata = materialization_metadata(results["window"], "predictions")
    assert metadata["new_by_status"].value == {"PENDING": 360}


@pytest.mark.parametrize("asset", ["inputs", "scores", "snapshots"])
def test_rematerializing_a_recomputable_asset_gives_identical_rows(pipeline_copy, asset):
    _, resources, lake, _ = pipeline_copy
    before = lake.read(asset, HOUR_KEY)
    run(resources, [asset], HOUR_KEY)
    after = lake.read(asset, HOUR_KEY)
    assert after.equals(before)
    assert after.height == after.unique().height  # no duplicates


def test_recorded_predictions_are_never_overwritten(pipeline_copy, tmp_path):
    _, resources, lake, _ = pipeline_copy
    before = lake.read("predictions", HOUR_KEY)
    manifest = tmp_path / "models.json"
    manifest.write_text(json.dumps([
        {"model_id": "momentum", "name": "Changed", "cruncher": "alice", "cruncher_index": 0,
         "entrypoint": "coordinator_dagster.models.examples:ContrarianTracker"},
    ]))
    changed = {**resources, "model_runner": type(resources["model_runner"])(manifest=str(manifest))}
    run(changed, ["predictions"], HOUR_KEY)
    assert lake.read("predictions", HOUR_KEY).equals(before)
    # Models that left the manifest stay registered (inactive) with their on-chain index.
    registry = {r["model_id"]: r for r in lake.read("models").iter_rows(named=True)}
    assert set(registry) == {"momentum", "mean-reversion", "contrarian"}
    assert registry["momentum"]["active"] and registry["momentum"]["name"] == "Changed"
    assert not registry["contrarian"]["active"] and registry["contrarian"]["cruncher_index"] == 2


def test_leaderboard_ranks_every_model(pipeline):
    _, _, lake, results = pipeline
    board = lake.read("leaderboard")
    assert board["rank"].to_list() == [1, 2, 3]
    assert set(board["model_id"]) == {"momentum", "mean-reversion", "contrarian"}
    values = board["ranking_value"].to_list()
    assert values == sorted(values, reverse=True)
    assert board["ranking_value"].equals(board["score_recent"], check_names=False)
    assert board["as_of"][0] == HOUR + dt.timedelta(hours=1)
    assert "| rank |" in materialization_metadata(results["leaderboard"], "leaderboard")["preview"].value


def test_checkpoint_emission_sums_and_uses_registered_indices(pipeline):
    _, _, lake, results = pipeline
    [row] = lake.read("checkpoints", WEEK_KEY).to_dicts()
    assert row["checkpoint_id"] == "CKP-2026-11-15" and row["status"] == "PENDING"
    emission = json.loads(row["emission"])
    entries = json.loads(row["entries"])
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) == FRAC64_MULTIPLIER
    registry = dict(lake.read("models").select("model_id", "cruncher_index").iter_rows())
    assert [r["cruncher_index"] for r in emission["cruncher_rewards"]] == [registry[e["model_id"]] for e in entries]
    # Entries carry the period's scored-count-weighted metrics (contribution-weighted emission uses them).
    assert all(isinstance(e["model_correlation"], float) and e["scored_count"] == 120 for e in entries)
    board = lake.read("leaderboard")
    # One window of data: the checkpoint's order is the leaderboard's.
    assert [e["model_id"] for e in entries] == board["model_id"].to_list()
    metadata = materialization_metadata(results["checkpoint"], "checkpoints")
    assert metadata["cruncher_reward_total"].value == FRAC64_MULTIPLIER
    assert "share_percent" in metadata["emission"].value


def test_a_checkpoint_that_left_pending_is_immutable(pipeline_copy):
    _, resources, lake, _ = pipeline_copy
    before = lake.read("checkpoints", WEEK_KEY)
    lake.append_event(
        "checkpoint_events",
        pl.DataFrame([{"checkpoint_id": "CKP-2026-11-15", "event_at": NOW, "status": "SUBMITTED", "tx_hash": "sig", "caller": "test"}],
                     schema=schemas.CHECKPOINT_EVENTS),
    )
    result = run(resources, ["checkpoints"], WEEK_KEY, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "is SUBMITTED" in failure.step_failure_data.error.message or "immutable" in str(failure.step_failure_data.user_failure_data)
    assert lake.read("checkpoints", WEEK_KEY).equals(before)


def test_a_backfill_range_is_one_run_and_matches_single_partitions(tmp_path):
    single = pipeline_resources(tmp_path / "single", NOW)
    ranged = pipeline_resources(tmp_path / "ranged", NOW)
    for key in (PREV_KEY, HOUR_KEY, NEXT_KEY):
        run(single, ["feed_records"], key)
    feed_range(ranged, PREV_KEY, NEXT_KEY)
    for key in (PREV_KEY, HOUR_KEY, NEXT_KEY):
        assert Lake(tmp_path / "ranged").read("feed_records", key).equals(Lake(tmp_path / "single").read("feed_records", key))



def test_leaderboard_history_keeps_each_hours_ranking(pipeline):
    _, _, lake, _ = pipeline
    history = lake.read("leaderboard_history", HOUR_KEY)
    assert history.equals(lake.read("leaderboard"))
    assert lake.query("SELECT count(DISTINCT as_of) AS n FROM leaderboard_history")["n"][0] == 1
