"""Ensembles: member selection and weights, combined predictions, ensemble metrics, pipeline."""

import datetime as dt
import json

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets import default_assets
from coordinator_dagster.contracts import CrunchContract, EnsembleConfig, default_contract
from coordinator_dagster.scoring.ensembles import ensemble_rows, member_weights, with_ensemble_columns
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.scoring.metrics import METRICS, compute_metrics_frame
from tests.conftest import HOUR, pipeline_resources
from tests.test_scoring import inputs_for, predictions_for

T0 = HOUR


def history(values_by_model):
    rows = []
    for model, values in values_by_model.items():
        for i, v in enumerate(values):
            rows.append({"model_id": model, "round_ts": T0 - dt.timedelta(minutes=len(values) - i), "value": v, "success": True,
                         "prediction_value": 1.0, "profit": v, "input_id": f"h{i}", "subject": "BTC"})
    return pl.DataFrame(rows)


def test_inverse_variance_weights():
    hist = history({"a": [1.0, 3.0], "b": [0.0, 4.0], "c": [5.0]})  # variances 2, 8; c has one score
    weights = member_weights(EnsembleConfig(name="iv"), CrunchContract(), hist, ["a", "b", "c"])
    # 1/2 and 1/8 normalised: 0.8 and 0.2; c has no defined variance and is left out.
    assert weights == pytest.approx({"a": 0.8, "b": 0.2})


def test_equal_weight_top_n_and_min_metric():
    hist = history({"a": [1.0, 3.0], "b": [0.0, 4.0], "c": [-5.0, -4.0]})
    equal = member_weights(EnsembleConfig(name="eq", strategy="equal_weight"), CrunchContract(), hist, ["a", "b", "c", "new"])
    assert equal == pytest.approx({"a": 0.25, "b": 0.25, "c": 0.25, "new": 0.25})  # no filter: every model answering
    top = member_weights(EnsembleConfig(name="t", strategy="equal_weight", top_n=2), CrunchContract(), hist, ["a", "b", "c"])
    assert top == pytest.approx({"a": 0.5, "b": 0.5})  # mean scores 2, 2, −4.5; ties by count then id
    floor = member_weights(
        EnsembleConfig(name="m", strategy="equal_weight", min_metric={"metric": "value", "min_value": 0}), CrunchContract(), hist, ["a", "b", "c"]
    )
    assert set(floor) == {"a", "b"}
    assert member_weights(EnsembleConfig(name="iv"), CrunchContract(), hist.clear(), ["a"]) == {}


def test_ensemble_prediction_is_the_weighted_mean_over_members_that_answered():
    inputs = inputs_for([T0, T0 + dt.timedelta(minutes=1)])
    preds = predictions_for(inputs, {"a": 1.0, "b": -1.0, "c": 3.0})
    # b failed on the second input: the ensemble renormalises over a alone there.
    preds = preds.with_columns(
        pl.when((pl.col("model_id") == "b") & (pl.col("round_ts") > T0)).then(pl.lit("FAILED")).otherwise(pl.col("status")).alias("status")
    )
    config = EnsembleConfig(name="main")
    rows = ensemble_rows(config, {"a": 0.75, "b": 0.25}, preds)
    assert rows["model_id"].unique().to_list() == ["__ensemble_main__"]
    assert rows.sort("round_ts")["value"].to_list() == pytest.approx([0.75 * 1 + 0.25 * -1, 1.0])
    assert json.loads(rows["output"][0])["weights"] == {"a": 0.75, "b": 0.25}


def scored_rows(rng, n=60):
    profit = rng.normal(0, 1, n)
    rows = []
    for model, noise in (("a", 0.5), ("b", 1.0), ("c", 2.0)):
        pred = profit + rng.normal(0, noise, n)
        rows += [{"model_id": model, "input_id": f"i{i}", "round_ts": T0 + dt.timedelta(minutes=i), "subject": "BTC",
                  "prediction_value": float(pred[i]), "profit": float(profit[i]), "value": float(np.sign(pred[i]) * profit[i])} for i in range(n)]
    return pl.DataFrame(rows)


def test_ensemble_metrics_hand_computed_and_vectorized():
    rows = scored_rows(np.random.default_rng(3))
    weights = {"a": 0.5, "b": 0.5}
    ens = rows.filter(pl.col("model_id").is_in(["a", "b"])).group_by("input_id").agg(pl.col("prediction_value").mean().alias("value"))
    ens_preds = ens.with_columns(
        pl.lit("__ensemble_main__").alias("model_id"), pl.lit(json.dumps({"value": 0, "weights": weights})).alias("output")
    )
    enriched = with_ensemble_columns(rows, ens_preds, EnsembleConfig(name="main"))
    a = enriched.filter(pl.col("model_id") == "a").sort("input_id")
    # Leave-one-out for a (weights 0.5/0.5): the ensemble without a is b's prediction.
    b = rows.filter(pl.col("model_id") == "b").sort("input_id")
    assert a["loo_value"].to_list() == pytest.approx(b["prediction_value"].to_list())
    y = a["profit"].to_numpy()
    expected = (np.sign(a["ensemble_value"].to_numpy()) * y).mean() - (np.sign(b["prediction_value"].to_numpy()) * y).mean()
    assert METRICS["contribution"](a, enriched) == pytest.approx(expected)
    assert enriched.filter(pl.col("model_id") == "c")["loo_value"].is_null().all()  # c is not a member
    names = ["fnc", "contribution", "ensemble_correlation"]
    frame = compute_metrics_frame(names, enriched, pl.DataFrame({"model_id": ["a", "b", "c"]}))
    for row in frame.iter_rows(named=True):
        mine = enriched.filter(pl.col("model_id") == row["model_id"])
        for name in names:
            expected = METRICS[name](mine, enriched)
            assert (row[name] is None) if expected is None else row[name] == pytest.approx(expected, rel=1e-9), (row["model_id"], name)


def ensemble_contract() -> CrunchContract:
    return default_contract().model_copy(
        update={
            "ensembles": [EnsembleConfig(name="main", lookback_hours=1), EnsembleConfig(name="flat", strategy="equal_weight")],
            "metrics": ["ic", "hit_rate", "model_correlation", "contribution", "fnc", "ensemble_correlation"],
            "build_emission": CrunchContract(build_emission="coordinator_dagster.scoring.emission:contribution_weighted_emission").build_emission,
        }
    )


def test_contract_refuses_ensemble_metrics_without_an_ensemble():
    with pytest.raises(ValueError, match="need at least one ensemble"):
        CrunchContract(metrics=["contribution"])


def test_ensembles_run_through_the_pipeline(home):
    resources = pipeline_resources(home, T0 + dt.timedelta(hours=5), contract=ensemble_contract())
    tags = {"dagster/asset_partition_range_start": "2026-11-20-09:00", "dagster/asset_partition_range_end": "2026-11-20-12:00"}
    dg.materialize(default_assets, selection=["feed_records"], resources=resources, tags=tags)
    dg.materialize(default_assets, selection=["inputs", "predictions", "scores", "snapshots", "leaderboard"], resources=resources, tags=tags)
    lake = Lake.for_contract(home, ensemble_contract())
    ens = lake.read_all("ensemble_predictions")
    # "flat" needs no history: every hour. "main" (inverse variance) needs the hour before: from 10:00.
    assert set(ens.filter(pl.col("model_id") == "__ensemble_flat__")["round_ts"].dt.hour()) == {9, 10, 11, 12}
    assert set(ens.filter(pl.col("model_id") == "__ensemble_main__")["round_ts"].dt.hour()) == {10, 11, 12}
    scores = lake.read_all("scores")
    assert scores.filter(pl.col("model_id").str.starts_with("__ensemble_")).height == ens.height
    snapshots = lake.read_window("snapshots", T0, T0 + dt.timedelta(hours=1))
    summary = {r["model_id"]: json.loads(r["result_summary"]) for r in snapshots.iter_rows(named=True)}
    assert set(summary) == {"momentum", "mean-reversion", "contrarian", "__ensemble_main__", "__ensemble_flat__"}
    assert all(summary[m]["ensemble_correlation"] is not None for m in ("momentum", "mean-reversion", "contrarian"))
    assert summary["__ensemble_main__"]["contribution"] is None  # ensemble metrics apply to real models only
    board = lake.read("leaderboard")
    assert board.filter(pl.col("is_ensemble"))["rank"].is_null().all()
    assert sorted(board.filter(~pl.col("is_ensemble"))["rank"].to_list()) == [1, 2, 3]
    dg.materialize(default_assets, selection=["checkpoints"], resources=resources, partition_key="2026-11-15")
    [checkpoint] = lake.read("checkpoints", "2026-11-15").to_dicts()
    entries = json.loads(checkpoint["entries"])
    assert {e["model_id"] for e in entries} == {"momentum", "mean-reversion", "contrarian"}
    assert all("contribution" in e for e in entries)
    assert sum(r["reward_pct"] for r in json.loads(checkpoint["emission"])["cruncher_rewards"]) == 1_000_000_000
