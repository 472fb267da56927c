"""Per-model snapshots of a window: counts, the aggregated score and the contract's metrics.

`build_snapshots` is the frame-level engine; `default_aggregate_snapshot` is the contract's
row-wise callable (a list of one model's score results → summary dict), with a vectorized twin.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import polars as pl

from coordinator_dagster import schemas
from coordinator_dagster.callables import vectorized, vectorized_twin
from coordinator_dagster.metrics import compute_metrics

if TYPE_CHECKING:
    from coordinator_dagster.contracts import CrunchContract


def _mean_value_frame(scores: pl.DataFrame) -> pl.DataFrame:
    return scores.group_by("model_id").agg(
        pl.col("value").filter(pl.col("success")).mean().alias("value")
    )


@vectorized(_mean_value_frame)
def default_aggregate_snapshot(score_results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every numeric field over the successful score results.

    The reference engine averages failed results too, which its own score type documents as
    wrong; here failed results count in `failed_count` only.
    """
    ok = [r for r in score_results if r.get("success", True)]
    summary: dict[str, Any] = {}
    for key in {k for r in ok for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}:
        values = [r[key] for r in ok if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool)]
        summary[key] = sum(values) / len(values) if values else None
    summary.setdefault("value", None)
    return summary


def _aggregate(contract: "CrunchContract", scores: pl.DataFrame) -> dict[str, dict[str, Any]]:
    fn = contract.aggregate_snapshot
    twin = vectorized_twin(fn)
    if twin is not None:
        return {row["model_id"]: {k: v for k, v in row.items() if k != "model_id"} for row in twin(scores).to_dicts()}
    out: dict[str, dict[str, Any]] = {}
    for (model_id,), rows in scores.group_by("model_id"):
        results = [json.loads(r) for r in rows["result"].to_list()]
        out[model_id] = fn(results)
    return out


def build_snapshots(
    contract: "CrunchContract",
    predictions: pl.DataFrame,
    scores: pl.DataFrame,
    period_start: dt.datetime,
    period_end: dt.datetime,
) -> pl.DataFrame:
    """One row per model with a prediction whose round falls in [period_start, period_end)."""
    in_window = (pl.col("round_ts") >= period_start) & (pl.col("round_ts") < period_end)
    predictions = predictions.filter(in_window)
    scores = scores.filter(in_window)
    if predictions.is_empty():
        return schemas.empty(schemas.SNAPSHOTS)
    aggregated = _aggregate(contract, scores) if not scores.is_empty() else {}
    value_field = contract.aggregation.value_field
    ok = scores.filter(pl.col("success"))
    rows = []
    for (model_id,), mine in predictions.group_by("model_id", maintain_order=True):
        model_scores = scores.filter(pl.col("model_id") == model_id)
        model_ok = ok.filter(pl.col("model_id") == model_id)
        summary = dict(aggregated.get(model_id, {}))
        summary.update(compute_metrics(contract.metrics, model_ok, ok))
        failed_predictions = mine.filter(pl.col("status") != "PENDING").height
        rows.append(
            {
                "model_id": model_id,
                "period_start": period_start,
                "period_end": period_end,
                "prediction_count": mine.height,
                "scored_count": model_ok.height,
                "failed_count": failed_predictions + model_scores.height - model_ok.height,
                "value": summary.get(value_field),
                "result_summary": json.dumps(summary, sort_keys=True, default=str),
            }
        )
    frame = pl.DataFrame(rows, schema=schemas.SNAPSHOTS)
    return schemas.conform(frame, schemas.SNAPSHOTS, "snapshots").sort("model_id")
