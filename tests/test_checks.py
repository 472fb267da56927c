"""Data-quality rules on scores and checkpoints, and their asset check results in Dagster."""

import datetime as dt

import dagster as dg
import polars as pl

from assets import default_assets
from coordinator_dagster.checks import emission_exact, no_prediction_left_behind, scores_unique
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources
from tests.test_scoring import feed, inputs_for, predictions_for

NOW = HOUR + dt.timedelta(hours=3)


def test_duplicate_scores_fail():
    scores = pl.DataFrame({"prediction_id": ["a", "b", "a"]})
    outcome = scores_unique(scores)
    assert not outcome.passed and outcome.metadata["duplicate_predictions"] == 1 and outcome.metadata["examples"] == ["a"]
    assert scores_unique(scores.unique()).passed


def test_pending_predictions_past_grace_must_be_scored_or_closed():
    preds = predictions_for(inputs_for([HOUR]), {"m": 1.0, "n": -1.0})
    nothing = pl.DataFrame({"prediction_id": []}, schema={"prediction_id": pl.String})
    within_grace = no_prediction_left_behind(preds, nothing, HOUR + dt.timedelta(minutes=30), 3600)
    assert within_grace.passed
    overdue = no_prediction_left_behind(preds, nothing, NOW, 3600)
    assert not overdue.passed and overdue.metadata["left_pending"] == 2
    one = pl.DataFrame({"prediction_id": [preds["prediction_id"][0]]})
    assert no_prediction_left_behind(preds, one, NOW, 3600).metadata["left_pending"] == 1


def test_emission_rules():
    entries = [{"model_id": "a", "cruncher_index": 1}, {"model_id": "b", "cruncher_index": 2}]
    good = {"cruncher_rewards": [{"cruncher_index": 1, "reward_pct": 600_000_000}, {"cruncher_index": 2, "reward_pct": 400_000_000}]}
    assert all(o.passed for o in emission_exact(good, entries))
    short = {"cruncher_rewards": [{"cruncher_index": 1, "reward_pct": 600_000_000}, {"cruncher_index": 2, "reward_pct": -1}]}
    outcomes = {o.name: o for o in emission_exact(short, entries)}
    assert not outcomes["rewards_sum_exactly"].passed and not outcomes["no_negative_share"].passed
    missing = {"cruncher_rewards": [{"cruncher_index": 1, "reward_pct": 1_000_000_000}]}
    assert {o.name: o.passed for o in emission_exact(missing, entries)}["every_ranked_model_rewarded"] is False
    assert all(o.passed for o in emission_exact({"cruncher_rewards": []}, []))


def test_asset_checks_are_emitted_with_the_data(home):
    resources = pipeline_resources(home, NOW)
    tags = {"dagster/asset_partition_range_start": "2026-11-20-09:00", "dagster/asset_partition_range_end": "2026-11-20-11:00"}
    dg.materialize(default_assets, selection=["feed_records"], resources=resources, tags=tags)
    result = dg.materialize(default_assets, selection=["inputs", "predictions", "scores", "snapshots"], resources=resources, partition_key=HOUR_KEY)
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {
        "inputs_unique_per_round": True,
        "inputs_window_prices_positive": True,
        "scores_unique_per_prediction": True,
        "pending_predictions_resolved_or_closed": True,
    }
    checkpoint = dg.materialize(default_assets, selection=["checkpoints"], resources=resources, partition_key="2026-11-15")
    assert {e.check_name: e.passed for e in checkpoint.get_asset_check_evaluations()} == {
        "rewards_sum_exactly": True, "no_negative_share": True, "every_ranked_model_rewarded": True,
        "ranking_reproducible": True,
    }
