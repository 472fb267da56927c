"""Tournament rounds: sample ids, matching truth by id, the house-price score, round status and
the truth lock."""

from __future__ import annotations

import json

import polars as pl
import pytest

from coordinator_dagster.scoring.tournament import (
    RoundError,
    TruthLocked,
    check_truth_change,
    house_price_output,
    house_price_score,
    predict_round,
    round_samples,
    round_status,
    sample_ids,
    score_round,
    truth_frame,
)

HOUSES = [{"sqft": 1000}, {"sqft": 1500}, {"sqft": 2000}, {"sqft": 2500}]
PRICES = [{"price": 200_000}, {"price": 300_000}, {"price": 400_000}, {"price": 500_000}]


def per_sqft(features):
    return {"prediction": features["sqft"] * 200}


def fails_on_1500(features):
    if features["sqft"] == 1500:
        raise RuntimeError("cannot price this one")
    return per_sqft(features)


def test_a_failed_sample_does_not_shift_later_scores():
    """The model fails sample 1; samples 2 and 3 are still scored against their own truth (a
    positional zip of its PENDING predictions would score sample 2 against sample 1's price)."""
    samples = round_samples("r1", HOUSES)
    predictions = predict_round(samples, {"exact": per_sqft, "flaky": fails_on_1500}, house_price_output)
    flaky = predictions.filter(model_id="flaky").sort("sample_id")
    assert flaky["status"].to_list() == ["PENDING", "FAILED", "PENDING", "PENDING"]
    assert flaky["failed_reason"][1] == "RuntimeError: cannot price this one"

    scores = score_round(predictions, truth_frame("r1", PRICES), house_price_score)
    flaky_scores = scores.filter(model_id="flaky")
    assert flaky_scores["sample_id"].to_list() == ["0", "2", "3"]
    assert flaky_scores["value"].to_list() == [1.0, 1.0, 1.0]
    assert scores.filter(model_id="exact")["value"].to_list() == [1.0] * 4
    results = [json.loads(r) for r in flaky_scores["result"]]
    assert [r["actual_price"] for r in results] == [200_000, 400_000, 500_000]


def test_explicit_sample_ids_match_truth_in_any_order():
    features = [{"sample_id": "a", "sqft": 1000}, {"sample_id": "b", "sqft": 2000}]
    truth = [{"sample_id": "b", "price": 400_000}, {"sample_id": "a", "price": 250_000}]
    predictions = predict_round(round_samples("r2", features), {"m": per_sqft}, house_price_output)
    scores = score_round(predictions, truth_frame("r2", truth), house_price_score)
    assert dict(zip(scores["sample_id"], scores["value"], strict=True)) == {"a": 0.8, "b": 1.0}


def test_a_sample_without_truth_stays_pending():
    predictions = predict_round(round_samples("r3", HOUSES), {"m": per_sqft}, house_price_output)
    scores = score_round(predictions, truth_frame("r3", PRICES[:2]), house_price_score)
    status = round_status("r3", predictions, scores)
    assert status == {
        "round_id": "r3",
        "status": "inference_complete",
        "total": 4,
        "model_count": 1,
        "sample_count": 4,
        "by_status": {"PENDING": 2, "SCORED": 2},
    }
    everything = score_round(predictions, truth_frame("r3", PRICES), house_price_score)
    assert round_status("r3", predictions, everything)["status"] == "scored"
    assert round_status("other", predictions, everything)["status"] == "not_found"


@pytest.mark.parametrize(
    ("prediction", "price", "value"),
    [(210_000, 200_000, 0.95), (190_000, 200_000, 0.95), (200_000, 200_000, 1.0), (500_000, 200_000, 0.0), (0, 200_000, 0.0), (300_000.5, 300_000, 1 - 0.5 / 300_000)],
)
def test_house_price_score(prediction, price, value):
    result = house_price_score({"prediction": prediction}, {"price": price})
    assert result["success"] and result["value"] == value


def test_house_price_score_refuses_a_non_positive_price():
    result = house_price_score({"prediction": 1.0}, {"price": 0})
    assert (result["success"], result["value"], result["failed_reason"]) == (False, None, "actual price is zero or negative")
    predictions = predict_round(round_samples("r4", HOUSES[:1]), {"m": per_sqft}, house_price_output)
    scores = score_round(predictions, truth_frame("r4", [{"price": 0}]), house_price_score)
    assert scores.row(0, named=True)["success"] is False


def test_invalid_answers_fail_the_prediction():
    predictions = predict_round(round_samples("r5", HOUSES[:2]), {"m": lambda f: {"prediction": "cheap"}, "n": lambda f: 3}, house_price_output)
    assert predictions["status"].to_list() == ["FAILED"] * 4
    assert score_round(predictions, truth_frame("r5", PRICES[:2]), house_price_score).is_empty()


def test_sample_ids_are_all_explicit_or_all_positional_and_unique():
    assert sample_ids([{}, {}]) == ["0", "1"]
    assert sample_ids([{"sample_id": 7}, {"sample_id": "x"}]) == ["7", "x"]
    with pytest.raises(RoundError, match="every sample"):
        sample_ids([{"sample_id": "a"}, {}])
    with pytest.raises(RoundError, match="duplicate"):
        sample_ids([{"sample_id": "a"}, {"sample_id": "a"}])
    with pytest.raises(RoundError):
        round_samples("r", [])
    assert truth_frame("r", {"price": 1})["sample_id"].to_list() == ["0"]


def test_models_do_not_see_the_sample_id():
    seen = []
    predict_round(round_samples("r6", [{"sample_id": "a", "sqft": 1}]), {"m": lambda f: seen.append(f) or {"prediction": 1}}, house_price_output)
    assert seen == [{"sqft": 1}]


def test_truth_is_locked_once_the_checkpoint_has_left_pending():
    recorded = truth_frame("r", PRICES)
    changed = truth_frame("r", PRICES[:3] + [{"price": 1}])
    check_truth_change(recorded, changed, None)
    check_truth_change(recorded, changed, "PENDING")
    check_truth_change(recorded, truth_frame("r", PRICES).reverse(), "SUBMITTED")  # the same truth again
    with pytest.raises(TruthLocked, match="SUBMITTED"):
        check_truth_change(recorded, changed, "SUBMITTED")
    with pytest.raises(TruthLocked):
        check_truth_change(recorded, pl.concat([recorded, truth_frame("r", [{"sample_id": "9", "price": 1}])]), "PAID")
