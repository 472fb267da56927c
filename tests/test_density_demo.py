"""`coordinator demo` for a contract with prediction profiles: rounds run in process over the
synthetic feed, every round scored and written to the lake's density_round_scores; then the
node's `group_leaderboard` and `checkpoints` assets rank them per horizon and pay the checkpoint
by the contract's reward rule (the production top-K rule here)."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from coordinator_dagster.cli.density_demo import format_density_result, load_trackers, run_density_demo, synthetic_prices
from coordinator_dagster.contracts import CrunchContract, TopKPerGroup
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.prediction_profiles import PredictionProfile

START = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)


class Wide:
    """A Gaussian with a fixed per-minute spread, about 1.5 times the feed's, grown with √step: no fitting."""

    def tick(self, data):
        pass

    def predict_all(self, asset, horizon, steps):
        per_minute = {"BTC": 100.0, "ETH": 10.0}.get(asset, 1e3)
        return {step: [{"type": "builtin", "name": "norm", "params": {"loc": 0.0, "scale": per_minute * (step / 60) ** 0.5}}] * (horizon // step) for step in steps}


class Broken(Wide):
    def predict_all(self, asset, horizon, steps):
        return {step: [] for step in steps}


def _manifest(tmp_path, entries):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps([{"model_id": m, "name": m, "cruncher": m, "cruncher_index": i, "entrypoint": e} for i, (m, e) in enumerate(entries)]))
    return path


def test_synthetic_prices_are_one_per_minute_at_candle_closes():
    prices = synthetic_prices(["BTC", "SOL"], START, START + dt.timedelta(hours=1), seed=3)
    assert prices.group_by("subject").len().sort("subject").rows() == [("BTC", 61), ("SOL", 61)]
    assert prices["ts_event"].min() == START and prices["ts_event"].max() == START + dt.timedelta(hours=1)


@pytest.mark.filterwarnings("ignore:sorted_dict.iloc is deprecated:DeprecationWarning")
def test_the_demo_runs_every_round_of_the_profiles_and_writes_their_scores(tmp_path):
    pytest.importorskip("crunch_synth")
    profile = PredictionProfile(name="1h", assets=["BTC", "ETH"], horizon_seconds=3600, steps=[300, 3600], interval_seconds=3600, history_days=2)
    contract = CrunchContract(prediction_profiles=[profile])
    manifest = _manifest(tmp_path, [("example", "crunch_synth.examples.exampletracker:GaussianStepTracker"),
                                    ("wide", f"{__name__}:Wide"), ("broken", f"{__name__}:Broken")])
    result = run_density_demo(tmp_path / "home", START, 1, contract, manifest, seed=5)
    assert result.rounds == 24 * 2
    assert result.warm_up_prices == {m: 2 * (2 * 24 * 60 + 1) for m in ("example", "wide", "broken")}
    lake_scores = Lake.for_contract(tmp_path / "home", contract).query("SELECT * FROM density_round_scores")
    assert lake_scores.height == 24 * 2 * 3
    statuses = dict(lake_scores.group_by("model_id").agg(pl.col("status").unique().sort().str.join(",")).iter_rows())
    assert statuses == {"example": "SCORED", "wide": "SCORED", "broken": "FAILED"}
    assert lake_scores.filter(pl.col("model_id") == "broken")["failed_reason"].unique().to_list() == ["step 300: expected 12 densities, got 0"]
    means = dict(lake_scores.group_by("model_id").agg(pl.col("score").mean()).iter_rows())
    assert means["example"] > means["wide"] > means["broken"] == 0.0  # a fitted spread beats a flat one
    assert "mean normalised score per model and horizon" in format_density_result(result)


@pytest.mark.filterwarnings("ignore:sorted_dict.iloc is deprecated:DeprecationWarning")
def test_the_demo_ranks_each_horizon_and_pays_its_checkpoint_by_the_top_k_rule(tmp_path):
    """Two profiles (two horizons) on two assets, three models, one of them the benchmark: the
    leaderboard has one table per horizon, and the checkpoint pays the top 3 per horizon without
    the benchmark, so slot 3 of each horizon stays in the pool."""
    pytest.importorskip("crunch_synth")
    profiles = [
        PredictionProfile(name="1h", assets=["BTC", "ETH"], horizon_seconds=3600, steps=[300, 3600], interval_seconds=3600, history_days=1),
        PredictionProfile(name="2h", assets=["BTC", "ETH"], horizon_seconds=7200, steps=[3600, 7200], interval_seconds=7200, history_days=1),
    ]
    rule = TopKPerGroup(top_k=3, alpha=1.0, benchmark_model_id="wide", pool_amount=1_000_000, pool_unit="USDC micro-unit (1e-6)")
    contract = CrunchContract(prediction_profiles=profiles, build_emission=rule, checkpoint_period="weekly")
    manifest = _manifest(tmp_path, [("example", "crunch_synth.examples.exampletracker:GaussianStepTracker"),
                                    ("wide", f"{__name__}:Wide"), ("broken", f"{__name__}:Broken")])
    result = run_density_demo(tmp_path / "home", START, 1, contract, manifest, seed=5)

    by_horizon = result.leaderboard.filter(pl.col("group_kind") == "horizon")
    assert sorted(set(by_horizon["group_key"])) == ["3600", "7200"]
    for key in ("3600", "7200"):
        ranked = by_horizon.filter(pl.col("group_key") == key).sort("rank")
        # The fitted tracker beats a flat density, which beats answers that always fail.
        assert ranked["model_id"].to_list() == ["example", "wide", "broken"] and ranked["rank"].to_list() == [1, 2, 3]
    assert sorted(set(result.leaderboard.filter(pl.col("group_kind") == "param")["group_key"])) == ["BTC:3600", "BTC:7200", "ETH:3600", "ETH:7200"]
    # What the report API's /reports/leaderboard/ranks reads: the lake's group_leaderboard view.
    lake = Lake.for_contract(tmp_path / "home", contract)
    assert lake.query("SELECT count(*) AS n FROM raw_group_leaderboard")["n"][0] == result.leaderboard.height

    [checkpoint] = result.checkpoints.to_dicts()
    assert checkpoint["checkpoint_id"] == "CKP-2026-11-15" and checkpoint["ranking_key"] == "horizon:anchor"
    table = result.payouts
    paid = table.filter(pl.col("status") == "paid").sort("group_key", "slot")
    assert paid.select("group_key", "slot", "model_id").rows() == [("3600", 1, "example"), ("3600", 2, "broken"), ("7200", 1, "example"), ("7200", 2, "broken")]
    assert table.filter(pl.col("model_id") == "wide")["reason"].to_list() == ["benchmark model: excluded from payouts"] * 2
    retained = table.filter(pl.col("status") == "retained")
    assert retained.select("group_key", "slot").rows() == [("3600", 3), ("7200", 3)]
    # Each horizon holds half the pool; slot p weighs e^(1/p): slot 3 of each is
    # 0.5 × e^(1/3) / (e + e^(1/2) + e^(1/3)) = 121,091,925.99 → 121,091,926 frac64.
    assert retained["reward_pct"].to_list() == [121_091_926, 121_091_926]
    emission = json.loads(checkpoint["emission"])
    assert emission["retained_pct"] == 2 * 121_091_926
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) + emission["retained_pct"] == FRAC64_MULTIPLIER
    assert paid["prize"].sum() + retained["prize"].sum() == 1_000_000
    assert 1 not in [r["cruncher_index"] for r in emission["cruncher_rewards"]]  # the benchmark's cruncher

    text = format_density_result(result)
    assert "**horizon 3600 s**" in text and "**BTC × 3600 s**" in text
    assert "| 3600 | 3 | retained |" in text and "= pool 1,000,000 USDC micro-unit (1e-6)" in text


def test_a_model_that_cannot_be_imported_is_named_with_what_to_install(tmp_path):
    with pytest.raises(RuntimeError, match=r"model x: cannot import no_such_pkg\.mod:T .*requirements\.txt"):
        load_trackers(_manifest(tmp_path, [("x", "no_such_pkg.mod:T")]))
