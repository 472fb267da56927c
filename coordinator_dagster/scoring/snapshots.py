"""Per-model snapshots of a window: counts, the aggregated score and the contract's metrics.

`build_snapshots` is the frame-level engine; `default_aggregate_snapshot` is the contract's
row-wise callable (a list of one model's score results → summary dict), with a vectorized twin.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.callables import vectorized, vectorized_twin
from coordinator_dagster.scoring.ensembles import is_ensemble, with_ensemble_columns
from coordinator_dagster.scoring.metrics import ENSEMBLE_METRICS, compute_metrics_frame
from coordinator_dagster.statuses import PredictionStatus

if TYPE_CHECKING:
    from coordinator_dagster.contracts import CrunchContract


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reason_counts(pairs: list[tuple[str | None, int]]) -> list[dict[str, Any]]:
    """[{reason, count}], most frequent first, then by reason (a missing reason last)."""
    ordered = sorted(pairs, key=lambda item: (-item[1], item[0] is None, item[0] or ""))
    return [{"reason": reason, "count": count} for reason, count in ordered]


_PLAIN_RESULT = ("value", "success", "failed_reason")


def _score_results(scores: pl.DataFrame) -> pl.DataFrame:
    """Every score's `result` JSON as columns. When each result holds exactly the score's own
    value, success and reason (the default score type, written by `scores._result_json`), they are
    those columns: decoding a million JSON texts was a third of building the snapshots."""
    plain = scores.select(*_PLAIN_RESULT)
    if scores.height and (plain.select(pl.struct(_PLAIN_RESULT).struct.json_encode()).to_series() == scores["result"]).all():
        return plain
    return scores["result"].str.json_decode(infer_schema_length=None).struct.unnest()


def _summary_frame(scores: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """`default_aggregate_snapshot` over every group at once (same fields, same values)."""
    # maintain_order=True everywhere in the engine: without it polars' grouped means over the
    # same rows differed in the last bits from run to run (measured), breaking byte-identical
    # re-scoring.
    results = _score_results(scores)
    frame = scores.select(*by, pl.col("success").alias("__ok")).hstack(results.drop("success", strict=False))
    ok = pl.col("__ok")
    aggregations = [pl.col("value").filter(ok).mean().alias("value"), ok.cast(pl.Float64).mean().alias("success")]
    for name, dtype in results.schema.items():
        if name in ("value", "success"):
            continue
        if dtype.is_numeric() or dtype == pl.Boolean:
            aggregations.append(pl.col(name).filter(ok).cast(pl.Float64).mean().alias(name))
        else:
            aggregations.append(pl.col(name).drop_nulls().last().alias(name))
    summary = frame.group_by(by, maintain_order=True).agg(aggregations)
    reason_type = pl.List(pl.Struct({"reason": pl.String, "count": pl.Int64}))
    reasons = (
        frame.filter(~ok)
        .group_by(*by, "failed_reason", maintain_order=True)
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .sort([*by, "count", "failed_reason"], descending=[*[False] * len(by), True, False], nulls_last=True, maintain_order=True)
        .group_by(by, maintain_order=True)
        .agg(pl.struct(pl.col("failed_reason").alias("reason"), "count").alias("failed_reasons"))
    )
    return summary.join(reasons, on=by, how="left", maintain_order="left").with_columns(
        pl.col("failed_reasons").fill_null(pl.lit([], dtype=reason_type)).cast(reason_type)
    )


@vectorized(_summary_frame)
def default_aggregate_snapshot(score_results: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's score results of a window (oldest first) → its summary.

    - every numeric field (custom score fields included) and every boolean field but `success`:
      the mean over the *successful* results, booleans as rates. The reference engine averages
      failed results too, which its own score type documents as wrong; here a failed result
      counts in `success` and `failed_reasons`, not in the means.
    - `success`: the share of results that succeeded (0.5 when half failed), as the reference's
      averaging of booleans gives it.
    - text and other fields: the last value that is not null, over all results (the reference's
      rule), so `failed_reason` is the most recent failure's reason.
    - `failed_reasons`: [{"reason", "count"}] over the failed results, most frequent first.
    """
    ok = [r for r in score_results if r.get("success", True)]
    summary: dict[str, Any] = {"value": None}
    keys = {k for r in score_results for k in r} - {"success"}
    for key in sorted(keys):
        values = [r[key] for r in ok if _is_number(r.get(key)) or isinstance(r.get(key), bool)]
        if values:
            summary[key] = sum(float(v) for v in values) / len(values)
        elif any(_is_number(r.get(key)) or isinstance(r.get(key), bool) for r in score_results):
            summary[key] = None  # numeric, but no successful result carries it
        else:
            present = [r[key] for r in score_results if r.get(key) is not None]
            summary[key] = present[-1] if present else None
    summary["success"] = len(ok) / len(score_results) if score_results else None
    failed = Counter(r.get("failed_reason") for r in score_results if not r.get("success", True))
    summary["failed_reasons"] = _reason_counts(list(failed.items()))
    return summary


def _aggregate(contract: "CrunchContract", scores: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """The contract's aggregation per group, as a frame with `by` and the summary fields."""
    fn = contract.aggregate_snapshot
    twin = vectorized_twin(fn)
    if twin is not None:
        return twin(scores, by)
    rows = []
    for key, part in scores.group_by(by, maintain_order=True):
        summary = fn([json.loads(r) for r in part["result"].to_list()])
        rows.append({**dict(zip(by, key, strict=True)), **summary})
    return pl.DataFrame(rows, infer_schema_length=None, strict=False).cast({k: scores.schema[k] for k in by})


def _metrics(contract: "CrunchContract", ok: pl.DataFrame, keys: pl.DataFrame, by: list[str], ensemble_predictions: pl.DataFrame) -> pl.DataFrame:
    """Metrics of real models and of ensembles, computed apart: an ensemble is not one of the
    "other models" a real model is compared with, and ensemble metrics do not apply to ensembles."""
    real_keys = keys.filter(~is_ensemble(pl.col("model_id")))
    real_ok = ok.filter(~is_ensemble(pl.col("model_id")))
    if contract.ensembles:
        real_ok = with_ensemble_columns(real_ok, ensemble_predictions, contract.ensembles[0])
    frames = [compute_metrics_frame(contract.metrics, real_ok, real_keys, by)]
    ensemble_keys = keys.filter(is_ensemble(pl.col("model_id")))
    if not ensemble_keys.is_empty():
        plain = [m for m in contract.metrics if m not in ENSEMBLE_METRICS]
        own = compute_metrics_frame(plain, ok.filter(is_ensemble(pl.col("model_id"))), ensemble_keys, by)
        frames.append(own.with_columns(*[pl.lit(None, dtype=pl.Float64).alias(m) for m in contract.metrics if m in ENSEMBLE_METRICS]).select(frames[0].columns))
    return pl.concat(frames)


def build_snapshots(
    contract: "CrunchContract",
    predictions: pl.DataFrame,
    scores: pl.DataFrame,
    period_start: dt.datetime,
    period_end: dt.datetime,
    ensemble_predictions: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per model (ensembles included) per hour of [period_start, period_end) in which it
    has a prediction.

    All hours are computed at once (a backfill range is one pass, not one pass per hour).
    """
    ensemble_predictions = ensemble_predictions if ensemble_predictions is not None else schemas.empty(schemas.PREDICTIONS)
    # LATE answers belong to the late track (coordinator_dagster.scoring.late_track): they are
    # neither counted nor failed here, so the main track is what it would be without them.
    predictions = pl.concat([predictions, ensemble_predictions]).filter(pl.col("status") != PredictionStatus.LATE.value)
    hour = pl.col("round_ts").dt.truncate("1h").alias("period_start")
    in_window = (pl.col("round_ts") >= period_start) & (pl.col("round_ts") < period_end)
    predictions = predictions.filter(in_window).with_columns(hour)
    scores = scores.filter(in_window).with_columns(hour)
    if predictions.is_empty():
        return schemas.empty(schemas.SNAPSHOTS)
    by = ["period_start", "model_id"]
    ok = scores.filter(pl.col("success"))
    counts = predictions.group_by(by, maintain_order=True).agg(
        pl.len().alias("prediction_count"), (pl.col("status") != PredictionStatus.PENDING.value).sum().alias("failed_predictions")
    ).join(
        scores.group_by(by, maintain_order=True).agg(pl.col("success").sum().alias("scored_count"), (~pl.col("success")).sum().alias("failed_scores")),
        on=by,
        how="left",
    )
    keys = counts.select(by).sort(by)
    metrics = _metrics(contract, ok, keys, by, ensemble_predictions)
    if scores.is_empty():
        aggregated = keys
    else:
        # Oldest first within each group: "the last value" of a text field is the newest round's.
        aggregated = _aggregate(contract, scores.sort("round_ts", "subject", maintain_order=True), by)
        # Metrics win over aggregated fields of the same name.
        aggregated = aggregated.select(*by, *[c for c in aggregated.columns if c not in by and c not in contract.metrics])
    summaries = metrics.join(aggregated, on=by, how="left")
    value_field = contract.aggregation.value_field
    if value_field not in summaries.columns:
        summaries = summaries.with_columns(pl.lit(None, dtype=pl.Float64).alias(value_field))
    fields = sorted(c for c in summaries.columns if c not in by)
    out = counts.join(summaries, on=by, how="left").with_columns(
        (pl.col("period_start") + dt.timedelta(hours=1)).alias("period_end"),
        pl.col("scored_count").fill_null(0),
        (pl.col("failed_predictions") + pl.col("failed_scores").fill_null(0)).alias("failed_count"),
        pl.col(value_field).cast(pl.Float64).alias("value"),
        pl.struct(fields).struct.json_encode().alias("result_summary"),
        pl.lit(contract.scoring_version).alias("scoring_version"),
    )
    frame = schemas.conform(out.select(schemas.SNAPSHOTS.names()), schemas.SNAPSHOTS, "snapshots")
    return frame.sort("period_start", "model_id")
