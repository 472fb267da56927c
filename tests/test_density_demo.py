"""`coordinator demo` for a contract with prediction profiles: rounds run in process over the
synthetic feed, every round scored and written to the lake's density_round_scores."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from coordinator_dagster.cli.density_demo import format_density_result, load_trackers, run_density_demo, synthetic_prices
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.prediction_profiles import PredictionProfile

START = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)


class Wide:
    """Answers one wide Gaussian for every interval."""

    def tick(self, data):
        pass

    def predict_all(self, asset, horizon, steps):
        density = {"type": "builtin", "name": "norm", "params": {"loc": 0.0, "scale": 1e3}}
        return {step: [density] * (horizon // step) for step in steps}


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


def test_a_model_that_cannot_be_imported_is_named_with_what_to_install(tmp_path):
    with pytest.raises(RuntimeError, match=r"model x: cannot import no_such_pkg\.mod:T .*requirements\.txt"):
        load_trackers(_manifest(tmp_path, [("x", "no_such_pkg.mod:T")]))
