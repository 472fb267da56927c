"""Snapshot summaries: the default aggregation's fields on a worked example, both forms alike."""

import datetime as dt
import json

import polars as pl
import pytest

from coordinator_dagster.contracts import CrunchContract, ScoreResult
from coordinator_dagster.scoring.merkle import canonical_snapshot
from coordinator_dagster.scoring.scores import score_predictions
from coordinator_dagster.scoring.snapshots import build_snapshots, default_aggregate_snapshot
from tests.test_scoring import MIN, T0, feed, inputs_for, predictions_for

HOUR = dt.timedelta(hours=1)


def row_wise(score_results):  # no vectorized twin: the engine runs it group by group
    return default_aggregate_snapshot(score_results)


def picky(prediction, ground_truth):
    """Scores rounds whose price rose; fails the others with a reason that names the move."""
    if ground_truth["profit"] > 0:
        return ScoreResult(value=ground_truth["profit"], pnl=2 * ground_truth["profit"], hedged=ground_truth["profit"] > 0.015, label="up")
    reason = "flat" if ground_truth["profit"] == 0 else "fell"
    return ScoreResult(value=0.0, success=False, failed_reason=reason)


def summaries(aggregate) -> dict[str, str]:
    # Closes 100 → 101 → 101 → 103.02 → 102 → 104.04: rises of 1 %, 0, 2 %, -0.99 %, 2 %.
    inputs = inputs_for([T0 + i * MIN for i in range(5)])
    preds = predictions_for(inputs, {"m": 1.0})
    records = feed([100.0, 101.0, 101.0, 103.02, 102.0, 104.04], start=T0 - MIN)
    contract = CrunchContract(scoring_function=picky, aggregate_snapshot=aggregate)
    scores = score_predictions(contract, preds, inputs, records, T0 + HOUR)
    snapshots = build_snapshots(contract, preds, scores, T0, T0 + HOUR)
    return {r["model_id"]: r for r in snapshots.iter_rows(named=True)}


@pytest.mark.parametrize("aggregate", [default_aggregate_snapshot, row_wise], ids=["vectorized", "row-wise"])
def test_the_summary_keeps_the_success_rate_and_the_failure_reasons(aggregate):
    [snapshot] = summaries(aggregate).values()
    summary = json.loads(snapshot["result_summary"])
    # Three of five rounds scored (+1 %, +2 %, +2 %): the value mean leaves the failures out.
    assert summary["value"] == pytest.approx((0.01 + 0.02 + 0.02) / 3)
    assert snapshot["value"] == summary["value"]
    assert summary["success"] == 0.6  # 3 of 5, as the reference's mean of booleans gives it
    assert summary["failed_reasons"] == [{"reason": "fell", "count": 1}, {"reason": "flat", "count": 1}]
    assert summary["failed_reason"] == "fell"  # the newest failure's reason (round 10:03)
    # Custom score fields: numbers and booleans averaged over the successful results, text kept last.
    assert summary["pnl"] == pytest.approx(2 * (0.01 + 0.02 + 0.02) / 3)
    assert summary["hedged"] == pytest.approx(2 / 3)
    assert summary["label"] == "up"
    assert (snapshot["scored_count"], snapshot["failed_count"]) == (3, 2)


def test_both_forms_write_the_same_summary_text():
    assert summaries(default_aggregate_snapshot)["m"]["result_summary"] == summaries(row_wise)["m"]["result_summary"]


def test_a_summary_without_failures_says_so_and_hashes_canonically():
    inputs = inputs_for([T0, T0 + MIN])
    preds = predictions_for(inputs, {"m": 1.0})
    records = feed([100.0, 101.0, 102.0], start=T0 - MIN)
    scores = score_predictions(CrunchContract(), preds, inputs, records, T0 + HOUR)
    [snapshot] = build_snapshots(CrunchContract(), preds, scores, T0, T0 + HOUR).iter_rows(named=True)
    summary = json.loads(snapshot["result_summary"])
    assert (summary["success"], summary["failed_reasons"], summary["failed_reason"]) == (1.0, [], None)
    # The Merkle leaf hashes the summary as a JSON value, nested list included.
    assert '"failed_reasons":[],"hit_rate":1.0' in canonical_snapshot(snapshot)


def test_the_row_wise_aggregation_on_its_own():
    results = [
        {"value": 0.1, "success": True, "failed_reason": None},
        {"value": 0.0, "success": False, "failed_reason": "timeout"},
        {"value": 0.3, "success": True, "failed_reason": None},
        {"value": 0.0, "success": False, "failed_reason": "timeout"},
    ]
    assert default_aggregate_snapshot(results) == {
        "value": pytest.approx(0.2),
        "success": 0.5,
        "failed_reason": "timeout",
        "failed_reasons": [{"reason": "timeout", "count": 2}],
    }
    assert default_aggregate_snapshot([]) == {"value": None, "success": None, "failed_reasons": []}
