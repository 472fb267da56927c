"""Ground truth and scoring over whole partitions, against the row-wise reference rules."""

import datetime as dt
import json

import polars as pl
import pytest

from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.callables import vectorized_twin
from coordinator_dagster.contracts import CrunchContract, ScoreResult
from coordinator_dagster.scoring.scores import (
    default_resolve_ground_truth,
    default_scoring_function,
    resolve_truth,
    score_predictions,
)

T0 = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
MIN = dt.timedelta(minutes=1)


def feed(closes, start=T0, subject="BTC"):
    n = len(closes)
    return pl.DataFrame(
        {
            "source": "synthetic", "subject": subject, "kind": "candle", "granularity": "1m",
            "ts_event": [start + i * MIN for i in range(n)],
            "open": closes, "high": closes, "low": closes, "close": closes, "volume": 1.0, "price": closes,
        },
        schema=schemas.FEED_RECORDS,
    )


def inputs_for(rounds, subject="BTC", horizon=MIN):
    return pl.DataFrame(
        [
            {
                "input_id": f"{subject}@{r:%H%M}", "scope_key": subject.lower(), "subject": subject, "round_ts": r,
                "resolvable_at": r + horizon, "step_seconds": 60, "horizon_seconds": int(horizon.total_seconds()),
                "window_ts": [], "window_close": [], "record_count": 0, "last_record_ts": r,
            }
            for r in rounds
        ],
        schema=schemas.INPUTS,
    )


def predictions_for(inputs, models):
    rows = []
    for item in inputs.iter_rows(named=True):
        for model_id, value in models.items():
            rows.append(
                {
                    "prediction_id": f"{item['input_id']}/{model_id}", "input_id": item["input_id"],
                    "scope_key": item["scope_key"], "subject": item["subject"], "model_id": model_id,
                    "round_ts": item["round_ts"], "resolvable_at": item["resolvable_at"],
                    "status": "PENDING" if value is not None else "FAILED", "value": value,
                    "output": json.dumps({"value": value}) if value is not None else None,
                    "failed_reason": None if value is not None else "model raised", "latency_ms": 1.0,
                    "predicted_at": item["round_ts"],
                }
            )
    return pl.DataFrame(rows, schema=schemas.PREDICTIONS)


def test_default_truth_takes_first_and_last_record_of_the_window():
    truth = resolve_truth(CrunchContract(), feed([100.0, 110.0, 120.0]), inputs_for([T0]))
    row = truth.row(0, named=True)
    assert (row["entry_price"], row["resolved_price"], row["truth_state"]) == (100.0, 110.0, "resolved")
    assert row["profit"] == pytest.approx(0.1)
    assert row["direction_up"] is True


def test_truth_waits_without_records_and_on_stale_data():
    contract = CrunchContract()
    assert resolve_truth(contract, feed([]), inputs_for([T0]))["truth_state"].to_list() == ["pending"]
    # Only the entry record exists: the newest record is a whole horizon before the resolvable time.
    assert resolve_truth(contract, feed([100.0]), inputs_for([T0]))["truth_state"].to_list() == ["stale"]
    # Zero entry price cannot give a return.
    assert resolve_truth(contract, feed([0.0, 1.0]), inputs_for([T0]))["truth_state"].to_list() == ["pending"]


def test_staleness_follows_the_configured_fraction():
    # A 5-minute horizon with records every minute up to 4 minutes in: 60 s late = 20 % of 300 s.
    inputs = inputs_for([T0], horizon=5 * MIN)
    records = feed([100.0, 101.0, 102.0, 103.0, 104.0])
    assert resolve_truth(CrunchContract(), records, inputs)["truth_state"][0] == "resolved"
    strict = CrunchContract(max_ground_truth_staleness_fraction=0.1)
    assert resolve_truth(strict, records, inputs)["truth_state"][0] == "stale"


def test_vectorized_truth_matches_the_row_wise_rule():
    closes = [100.0 + (i * 7919 % 13) - 6 for i in range(90)]
    records = feed(closes)
    rounds = [T0 + i * MIN for i in range(0, 95, 3)]
    inputs = inputs_for(rounds)
    frame = vectorized_twin(default_resolve_ground_truth)(records, inputs, 0.2)
    for item in inputs.iter_rows(named=True):
        window = records.filter(pl.col("ts_event").is_between(item["round_ts"], item["resolvable_at"])).to_dicts()
        expected = default_resolve_ground_truth(window, item)
        got = frame.filter(pl.col("input_id") == item["input_id"]).row(0, named=True)
        if expected is None:
            assert got["truth_state"] != "resolved"
        else:
            assert got["truth_state"] == "resolved"
            assert got["profit"] == pytest.approx(expected["profit"])
            assert got["direction_up"] == expected["direction_up"]


def test_default_score_is_the_directional_return():
    assert default_scoring_function({"value": 3.0}, {"profit": 0.02}).value == pytest.approx(0.02)
    assert default_scoring_function({"value": -0.1}, {"profit": 0.02}).value == pytest.approx(-0.02)
    assert default_scoring_function({"value": 0.0}, {"profit": 0.02}).value == 0.0


def test_score_predictions_scores_pending_only_and_matches_row_wise():
    records = feed([100.0, 102.0, 101.0, 104.0])
    inputs = inputs_for([T0, T0 + MIN, T0 + 2 * MIN])
    preds = predictions_for(inputs, {"up": 1.0, "down": -2.0, "broken": None})
    now = T0 + dt.timedelta(minutes=5)
    vector = score_predictions(CrunchContract(), preds, inputs, records, now)
    assert vector.schema == schemas.SCORES
    assert set(vector["model_id"]) == {"up", "down"}  # FAILED predictions are never scored
    by_id = {r["prediction_id"]: r for r in vector.iter_rows(named=True)}
    assert by_id[f"BTC@1000/up"]["value"] == pytest.approx(0.02)
    assert by_id[f"BTC@1000/down"]["value"] == pytest.approx(-0.02)

    def plain(prediction, ground_truth):  # no vectorized twin: runs row by row
        return default_scoring_function(prediction, ground_truth)

    rows = score_predictions(CrunchContract(scoring_function=plain), preds, inputs, records, now)
    assert rows.select("prediction_id", "value", "success").equals(vector.select("prediction_id", "value", "success"))


def test_a_scoring_function_that_raises_fails_only_its_row():
    def fragile(prediction, ground_truth):
        if prediction["value"] < 0:
            raise ZeroDivisionError("bad row")
        return ScoreResult(value=1.0)

    records = feed([100.0, 102.0, 101.0])
    inputs = inputs_for([T0, T0 + MIN])
    preds = predictions_for(inputs, {"up": 1.0, "down": -1.0})
    out = score_predictions(CrunchContract(scoring_function=fragile), preds, inputs, records, T0 + dt.timedelta(minutes=5))
    ok = out.filter(pl.col("model_id") == "up")
    bad = out.filter(pl.col("model_id") == "down")
    assert ok["success"].to_list() == [True, True] and ok["value"].to_list() == [1.0, 1.0]
    assert bad["success"].to_list() == [False, False]
    assert all("ZeroDivisionError" in reason for reason in bad["failed_reason"])


def test_garbage_from_a_scoring_function_fails_the_row():
    out = score_predictions(
        CrunchContract(scoring_function=lambda prediction, ground_truth: {"value": float("inf")}),
        predictions_for(inputs_for([T0]), {"m": 1.0}),
        inputs_for([T0]),
        feed([1.0, 2.0]),
        T0 + dt.timedelta(minutes=5),
    )
    assert out["success"].to_list() == [False]
    assert "not finite" in out["failed_reason"][0]


def test_unresolvable_predictions_are_closed_after_the_grace_period():
    contract = CrunchContract(ground_truth_grace_seconds=600)
    inputs = inputs_for([T0])
    preds = predictions_for(inputs, {"m": 1.0})
    records = feed([100.0])  # truth never arrives
    waiting = score_predictions(contract, preds, inputs, records, T0 + dt.timedelta(minutes=5))
    assert waiting.is_empty()  # still PENDING inside the grace period
    closed = score_predictions(contract, preds, inputs, records, T0 + dt.timedelta(minutes=12))
    assert closed["success"].to_list() == [False]
    assert "ground truth unavailable (stale)" in closed["failed_reason"][0]
    assert closed["value"].to_list() == [None]


def test_custom_row_wise_truth_that_raises_fails_its_inputs_only():
    def truth(records, input):
        if input["round_ts"] == T0:
            raise RuntimeError("feed glitch")
        return default_resolve_ground_truth(records, input)

    contract = CrunchContract(resolve_ground_truth=truth, ground_truth_grace_seconds=60)
    inputs = inputs_for([T0, T0 + MIN])
    preds = predictions_for(inputs, {"m": 1.0})
    out = score_predictions(contract, preds, inputs, feed([100.0, 101.0, 103.0]), T0 + dt.timedelta(minutes=10))
    by_round = {r["round_ts"]: r for r in out.iter_rows(named=True)}
    assert by_round[T0]["success"] is False and "feed glitch" in by_round[T0]["failed_reason"]
    assert by_round[T0 + MIN]["success"] is True
