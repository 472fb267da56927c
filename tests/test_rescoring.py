"""Re-scoring: byte-identical re-runs, scoring versions side by side, comparison and pruning."""

import datetime as dt
import hashlib
import os
import subprocess
import sys

import dagster as dg
import pytest

from assets import default_assets
from coordinator_dagster.contracts import CrunchContract, ScoreResult, default_contract
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.scoring.ranking import compare_versions
from tests.conftest import pipeline_resources

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

# A whole week of hourly partitions (plus the hour after it, for the last rounds' truth).
RANGE = {"dagster/asset_partition_range_start": "2026-11-15-00:00", "dagster/asset_partition_range_end": "2026-11-22-00:00"}
WEEK_HOURS = 7 * 24 + 1
NOW = dt.datetime(2026, 11, 22, 3, tzinfo=dt.timezone.utc)


def btc_contract() -> CrunchContract:
    """BTC rounds only: a week of them keeps the suite quick while covering 169 partitions."""
    return default_contract().model_copy(update={"scheduled_predictions": default_contract().scheduled_predictions[:1]})


def v2_contract() -> CrunchContract:
    """Version v2 scores the square root of the return's size, with its sign."""

    def rooted(prediction, ground_truth):
        sign = (prediction["value"] > 0) - (prediction["value"] < 0)
        return ScoreResult(value=sign * abs(ground_truth["profit"]) ** 0.5)

    return btc_contract().model_copy(update={"scoring_version": "v2", "scoring_function": rooted})


def digests(lake: Lake, table: str) -> dict[str, str]:
    return {p.relative_to(lake.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in lake.files(table)}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    home = tmp_path_factory.mktemp("rescore") / "home"
    resources = pipeline_resources(home, NOW, contract=btc_contract())
    dg.materialize(default_assets, selection=["feed_records"], resources=resources, tags=RANGE)
    dg.materialize(default_assets, selection=["inputs", "predictions", "scores", "snapshots"], resources=resources, tags=RANGE)
    return home, resources


def test_re_scoring_a_week_twice_gives_byte_identical_partitions(scored):
    home, resources = scored
    lake = Lake(home)
    before = {t: digests(lake, t) for t in ("scores", "snapshots")}
    assert len(before["scores"]) == WEEK_HOURS
    dg.materialize(default_assets, selection=["scores", "snapshots"], resources=resources, tags=RANGE)
    assert {t: digests(lake, t) for t in ("scores", "snapshots")} == before
    assert set(lake.read_all("scores")["scoring_version"]) == {"v1"}


def test_a_new_scoring_version_keeps_the_old_one_queryable(scored, tmp_path):
    home, resources = scored
    v2 = {**resources, "contract": v2_contract()}
    # Re-score one day of the week with v2 (the row-wise v2 function is the slow path).
    day = {"dagster/asset_partition_range_start": "2026-11-20-00:00", "dagster/asset_partition_range_end": "2026-11-20-23:00"}
    result = dg.materialize(default_assets, selection=["scores", "snapshots"], resources=v2, tags=day)
    assert result.success
    v1_lake, v2_lake = Lake(home), Lake(home, scoring_version="v2")
    assert v1_lake.versions("scores") == ["v1", "v2"]
    start, end = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc)
    v1_scores, v2_scores = v1_lake.read_window("scores", start, end), v2_lake.read_all("scores")
    assert v1_scores.height == v2_scores.height > 0
    assert set(v2_scores["scoring_version"]) == {"v2"}
    assert not v1_scores["value"].equals(v2_scores["value"])
    # Both versions through DuckDB: the current one in `scores`, every one in `scores_all_versions`.
    by_version = dict(v1_lake.query("SELECT version, count(*) FROM scores_all_versions WHERE date = '2026-11-20' GROUP BY ALL").iter_rows())
    assert by_version == {"v1": v1_scores.height, "v2": v2_scores.height}
    assert v2_lake.query("SELECT DISTINCT scoring_version FROM scores")["scoring_version"].to_list() == ["v2"]

    table = compare_versions(btc_contract(), v1_lake.read_window("snapshots", start, end), v2_lake.read_all("snapshots"), v1_lake.read("models"), ("v1", "v2"))
    assert table.columns == ["model_id", "rank_v1", "value_v1", "rank_v2", "value_v2", "places_gained"]
    assert sorted(table["rank_v2"].to_list()) == [1, 2, 3]

    env = {**os.environ, "COORDINATOR_HOME": str(home)}
    cli = [sys.executable, "-m", "coordinator_dagster.cli.main"]
    shown = subprocess.run([*cli, "compare-versions", "v1", "v2", "--start", "2026-11-20", "--end", "2026-11-20"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "rank_v1" in shown.stdout and "places_gained" in shown.stdout
    listed = subprocess.run([*cli, "versions"], env=env, capture_output=True, text=True, timeout=60)
    assert f"scores     v1 (current): {WEEK_HOURS} hour partitions" in listed.stdout and "v2" in listed.stdout
    refused = subprocess.run([*cli, "prune-version", "v1"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "current scoring version" in refused.stderr
    pruned = subprocess.run([*cli, "prune-version", "v2"], env=env, capture_output=True, text=True, timeout=60)
    assert pruned.returncode == 0, pruned.stderr
    assert v1_lake.versions("scores") == ["v1"] and v1_lake.read_window("scores", start, end).height == v1_scores.height


def test_bad_scoring_versions_are_refused():
    with pytest.raises(ValueError):
        CrunchContract(scoring_version="../../etc")
    with pytest.raises(ValueError, match="scoring version"):
        Lake("/tmp/unused", scoring_version="a b")
