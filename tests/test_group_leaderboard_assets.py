"""The leaderboards by group and the production reward rule, materialized in-process: the
`group_leaderboard` asset draws its tables in the UI, and a checkpoint whose contract selects
`TopKPerGroup` pays per that rule (payout table, retained share, prizes in the pool's unit)."""

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from assets import build_checkpoints_asset, default_assets
from assets.group_leaderboard import group_leaderboard
from coordinator_dagster.contracts import TopKPerGroup, default_contract
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.partitions import CHECKPOINT_PARTITIONS
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources

WEEK_KEY = "2026-11-15"
NOW = HOUR + dt.timedelta(hours=3)
ASSETS = [*default_assets, group_leaderboard]


def _run(resources, selection, partition_key=None, run_config=None):
    return dg.materialize(ASSETS, selection=selection, resources=resources, partition_key=partition_key, run_config=run_config)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """One hour of the default competition, scored: three models, two subjects, one horizon."""
    home = tmp_path_factory.mktemp("groups") / "home"
    rule = TopKPerGroup(top_k=2, alpha=1.0, benchmark_model_id="contrarian", pool_amount=1_000_000, pool_unit="USDC micro-unit")
    contract = default_contract().model_copy(update={"build_emission": rule})
    resources = pipeline_resources(home, NOW, contract=contract)
    dg.materialize(
        ASSETS, selection=["feed_records"], resources=resources,
        tags={"dagster/asset_partition_range_start": "2026-11-20-09:00", "dagster/asset_partition_range_end": "2026-11-20-11:00"},
    )
    _run(resources, ["inputs", "predictions", "scores", "snapshots"], HOUR_KEY)
    return home, resources, contract, Lake.for_contract(home, contract)


def _metadata(result, key):
    [event] = result.asset_materializations_for_node(key)
    return event.metadata


def test_group_leaderboard_ranks_each_horizon_and_asset_and_draws_them(scored):
    home, resources, contract, lake = scored
    result = _run(resources, ["group_leaderboard"])
    board = lake.read("group_leaderboard")
    models = {"momentum", "mean-reversion", "contrarian"}
    for kind, keys in {"overall": {""}, "horizon": {"60"}, "param": {"BTC:60", "ETH:60"}}.items():
        part = board.filter(pl.col("group_kind") == kind)
        assert set(part["group_key"]) == keys
        for key in keys:
            group = part.filter(pl.col("group_key") == key)
            assert set(group["model_id"]) == models
            values = group.sort("rank")["ranking_value"].to_list()
            assert values == sorted(values, reverse=True)  # ranked by the ranking window, best first
    # A param group's window value is the mean of that model's successful scores on that subject.
    scores = lake.read_window("scores", HOUR, HOUR + dt.timedelta(hours=1)).filter(pl.col("success"))
    expected = scores.filter(pl.col("subject") == "BTC").group_by("model_id").agg(pl.col("value").mean())
    got = board.filter(pl.col("group_key") == "BTC:60").select("model_id", "score_recent")
    joined = expected.join(got, on="model_id")
    assert joined.height == 3 and all(abs(a - b) < 1e-12 for a, b in joined.select("value", "score_recent").iter_rows())
    metadata = _metadata(result, "group_leaderboard")
    assert "**horizon 60 s**" in metadata["by_horizon"].value and "| rank | model | recent |" in metadata["by_horizon"].value
    assert "**BTC × 60 s**" in metadata["by_asset_and_horizon"].value


def test_checkpoint_pays_by_the_selected_top_k_rule(scored, tmp_path):
    home, resources, contract, lake = scored
    config = {"ops": {"checkpoints": {"config": {"pool_amount": 7_000_000}}}}
    result = _run(resources, ["checkpoints"], WEEK_KEY, run_config=config)
    [row] = lake.read("checkpoints", WEEK_KEY).to_dicts()
    emission = json.loads(row["emission"])
    payouts = lake.read("checkpoint_payouts", WEEK_KEY)
    # One horizon (60 s), two slots; the benchmark (contrarian) is never paid, so the two other
    # models take both slots and nothing is retained.
    paid = payouts.filter(pl.col("status") == "paid").sort("slot")
    assert paid["slot"].to_list() == [1, 2] and "contrarian" not in paid["model_id"].to_list()
    assert payouts.filter(pl.col("model_id") == "contrarian")["reason"].to_list() == ["benchmark model: excluded from payouts"]
    # Slot 1 is worth e/(e + e^0.5) of the pool: 622,459,331.2 → 622,459,331 frac64, 4,357,215.3 → 4,357,215 units.
    assert paid["reward_pct"].to_list() == [622_459_331, 377_540_669]
    assert paid["prize"].to_list() == [4_357_215, 2_642_785] and paid["pool_amount"].to_list() == [7_000_000] * 2
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) + emission["retained_pct"] == FRAC64_MULTIPLIER
    assert row["ranking_key"] == "horizon:anchor"
    entries = json.loads(row["entries"])
    assert all("60" in e["ranks_by_horizon"] for e in entries)
    metadata = _metadata(result, "checkpoints")
    assert metadata["pool_amount"].value == 7_000_000 and metadata["retained_pct"].value == 0
    assert "prizes 7,000,000 + retained 0 = pool 7,000,000" in metadata["payouts"].value
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks and all(checks.values())


def test_checkpoint_with_the_default_rule_records_prizes_from_its_shares(tmp_path):
    resources = pipeline_resources(tmp_path / "home", NOW)
    dg.materialize(
        ASSETS, selection=["feed_records"], resources=resources,
        tags={"dagster/asset_partition_range_start": "2026-11-20-09:00", "dagster/asset_partition_range_end": "2026-11-20-11:00"},
    )
    _run(resources, ["inputs", "predictions", "scores", "snapshots"], HOUR_KEY)
    _run(resources, ["checkpoints"], WEEK_KEY, run_config={"ops": {"checkpoints": {"config": {"pool_amount": 999}}}})
    lake = Lake.for_contract(tmp_path / "home", default_contract())
    [row] = lake.read("checkpoints", WEEK_KEY).to_dicts()
    assert [e["rank"] for e in json.loads(row["entries"])] == [1, 2, 3]
    payouts = lake.read("checkpoint_payouts", WEEK_KEY)
    # Tiers: 35 %, 10 %, 10 %, the 45 % left split equally → 50 %, 25 %, 25 %. Prizes of 999
    # units: exact 499.5, 249.75, 249.75 → floors 499 + 249 + 249 = 997, the two units left go to
    # the largest remainders (0.75, 0.75) → 499, 250, 250.
    assert payouts["status"].to_list() == ["paid"] * 3
    assert payouts["reward_pct"].to_list() == [500_000_000, 250_000_000, 250_000_000]
    assert payouts["prize"].to_list() == [499, 250, 250] and payouts["prize"].sum() == 999


def test_round_scores_come_from_the_density_table_when_the_contract_has_prediction_profiles():
    from coordinator_dagster.group_lake import DENSITY_TABLE, read_round_scores, round_source
    from coordinator_dagster.prediction_profiles import synth_profiles

    class Store:
        """A lake: every lake has both tables, so only the contract can say which holds its rounds."""

        def __init__(self):
            self.read = []

        def read_window(self, name, start, end):
            self.read.append((name, start, end))
            return pl.DataFrame({"model_id": ["m"], "score": [0.5]})

    assert round_source(default_contract()) == "scores"
    density = default_contract().model_copy(update={"prediction_profiles": synth_profiles(["BTC"])})
    store = Store()
    frame = read_round_scores(store, density, HOUR, HOUR + dt.timedelta(hours=1))
    # Rounds performed up to two days before the window may resolve inside it.
    assert store.read == [(DENSITY_TABLE, HOUR - dt.timedelta(days=2), HOUR + dt.timedelta(hours=1))]
    assert frame["score"].to_list() == [0.5]
