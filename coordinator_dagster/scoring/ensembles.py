"""Ensembles: virtual meta-models `__ensemble_<name>__` built from the real models' predictions.

For each hourly window, members and weights come from the `lookback_hours` of scores before
the window (never the window itself, so an ensemble never peeks at its own truth). The ensemble's
prediction for an input is the weighted mean of its members' predictions for that input,
renormalised over the members that answered. Ensemble predictions are derived data: they are
scored like any model's, but kept apart from the participants' recorded predictions.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.domain_types import EnsembleConfig
from coordinator_dagster.scoring.metrics import compute_metrics_frame
from coordinator_dagster.statuses import PredictionStatus

if TYPE_CHECKING:
    from coordinator_dagster.contracts import CrunchContract

ENSEMBLE_PREFIX = "__ensemble_"


def is_ensemble(model_id: pl.Expr | str) -> pl.Expr | bool:
    if isinstance(model_id, str):
        return model_id.startswith(ENSEMBLE_PREFIX)
    return model_id.str.starts_with(ENSEMBLE_PREFIX)


def member_weights(config: EnsembleConfig, contract: "CrunchContract", history: pl.DataFrame, candidates: list[str]) -> dict[str, float]:
    """Members and normalised weights from the history's successful scores of real models.

    `min_metric` keeps models whose metric over the history reaches the threshold; `top_n` keeps
    the best by mean score (ties: more scores, then model_id); `inverse_variance` weights by
    1 / variance of the score values (models with fewer than two scores, or zero variance, have
    no defined weight and are left out); `equal_weight` gives every member the same weight.
    """
    ok = history.filter(pl.col("success") & pl.col("model_id").is_in(candidates) & ~is_ensemble(pl.col("model_id")))
    stats = ok.group_by("model_id", maintain_order=True).agg(
        pl.col("value").mean().alias("mean"), pl.col("value").var(ddof=1).alias("var"), pl.len().alias("n")
    )
    needs_history = config.strategy == "inverse_variance" or config.top_n or config.min_metric
    members = stats if needs_history else pl.DataFrame({"model_id": sorted(candidates)})
    if config.min_metric is not None:
        metric = config.min_metric.metric
        if metric == "value":
            passing = stats.filter(pl.col("mean") >= config.min_metric.min_value)["model_id"]
        else:
            values = compute_metrics_frame([metric], ok, stats.select("model_id"))
            passing = values.filter(pl.col(metric) >= config.min_metric.min_value)["model_id"]
        members = members.filter(pl.col("model_id").is_in(passing.to_list()))
    if config.top_n is not None:
        best = stats.filter(pl.col("model_id").is_in(members["model_id"].to_list())).sort(
            ["mean", "n", "model_id"], descending=[contract.aggregation.ranking_direction == "desc", True, False], nulls_last=True
        )
        members = members.filter(pl.col("model_id").is_in(best.head(config.top_n)["model_id"].to_list()))
    if config.strategy == "inverse_variance":
        usable = stats.filter(pl.col("model_id").is_in(members["model_id"].to_list()) & (pl.col("n") >= 2) & (pl.col("var") > 0))
        raw = {m: 1.0 / v for m, v in usable.select("model_id", "var").iter_rows()}
    else:
        raw = {m: 1.0 for m in members["model_id"].to_list()}
    total = sum(raw.values())
    return {m: raw[m] / total for m in sorted(raw)} if total > 0 else {}


def ensemble_rows(config: EnsembleConfig, weights: dict[str, float], predictions: pl.DataFrame) -> pl.DataFrame:
    """The ensemble's prediction for every input where at least one member gave a valid answer."""
    if not weights:
        return schemas.empty(schemas.PREDICTIONS)
    weight_frame = pl.DataFrame({"model_id": list(weights), "weight": list(weights.values())})
    members = predictions.filter(pl.col("status") == PredictionStatus.PENDING.value).join(weight_frame, on="model_id")
    if members.is_empty():
        return schemas.empty(schemas.PREDICTIONS)
    weights_json = json.dumps(weights, sort_keys=True)
    combined = (
        members.sort("input_id", "model_id")
        .group_by("input_id", "scope_key", "subject", "round_ts", "resolvable_at", maintain_order=True)
        .agg(
            ((pl.col("value") * pl.col("weight")).sum() / pl.col("weight").sum()).alias("value"),
            pl.len().alias("members"),
            pl.col("predicted_at").max(),
        )
    )
    rows = combined.with_columns(
        pl.lit(config.model_id).alias("model_id"),
        (pl.col("input_id") + "/" + pl.lit(config.model_id)).alias("prediction_id"),
        pl.lit(PredictionStatus.PENDING.value).alias("status"),
        pl.format('{{"value":{},"members":{},"weights":{}}}', pl.col("value"), pl.col("members"), pl.lit(weights_json)).alias("output"),
        pl.lit(None, dtype=pl.String).alias("failed_reason"),
        pl.lit(None, dtype=pl.Float64).alias("latency_ms"),
    )
    return schemas.conform(rows.select(schemas.PREDICTIONS.names()), schemas.PREDICTIONS, "ensemble_predictions")


def build_ensembles(
    contract: "CrunchContract",
    predictions: pl.DataFrame,
    scores: pl.DataFrame,
    hours: list[dt.datetime],
) -> pl.DataFrame:
    """Every configured ensemble's predictions for each hour in `hours`.

    `scores` must hold the real models' scores from `max(lookback)` before the first hour up to
    the last hour (earlier windows from the lake, the range being scored from this run).
    """
    frames = []
    for start in hours:
        window = predictions.filter((pl.col("round_ts") >= start) & (pl.col("round_ts") < start + dt.timedelta(hours=1)))
        if window.is_empty():
            continue
        candidates = sorted(set(window["model_id"].to_list()))
        for config in contract.ensembles:
            history = scores.filter(
                (pl.col("round_ts") >= start - dt.timedelta(hours=config.lookback_hours)) & (pl.col("round_ts") < start)
            )
            frames.append(ensemble_rows(config, member_weights(config, contract, history, candidates), window))
    out = pl.concat(frames) if frames else schemas.empty(schemas.PREDICTIONS)
    return out.sort("round_ts", "scope_key", "model_id")


def with_ensemble_columns(rows: pl.DataFrame, ensemble_predictions: pl.DataFrame, config: EnsembleConfig) -> pl.DataFrame:
    """Scored rows plus, per input, the ensemble's value and the ensemble's value without the
    row's model (leave-one-out; null when the model is not a member), for the ensemble metrics."""
    ens = ensemble_predictions.filter(pl.col("model_id") == config.model_id).select(
        "input_id",
        pl.col("value").alias("ensemble_value"),
        pl.col("output").str.json_path_match("$.weights").alias("__weights"),
    )
    if ens.is_empty() or rows.is_empty():
        return rows.with_columns(pl.lit(None, dtype=pl.Float64).alias("ensemble_value"), pl.lit(None, dtype=pl.Float64).alias("loo_value"))
    weights = {}
    for input_id, blob in ens.select("input_id", "__weights").iter_rows():
        weights[input_id] = json.loads(blob)
    weight_rows = pl.DataFrame(
        [{"input_id": i, "model_id": m, "weight": w} for i, ws in weights.items() for m, w in ws.items()],
        schema={"input_id": pl.String, "model_id": pl.String, "weight": pl.Float64},
    )
    member_rows = rows.join(weight_rows, on=["input_id", "model_id"], how="inner")
    sums = member_rows.group_by("input_id", maintain_order=True).agg(
        (pl.col("prediction_value") * pl.col("weight")).sum().alias("__sum"), pl.col("weight").sum().alias("__w")
    )
    out = (
        rows.join(ens.drop("__weights"), on="input_id", how="left")
        .join(weight_rows, on=["input_id", "model_id"], how="left")
        .join(sums, on="input_id", how="left")
        .with_columns(
            pl.when(pl.col("weight").is_not_null() & (pl.col("__w") - pl.col("weight") > 0))
            .then((pl.col("__sum") - pl.col("prediction_value") * pl.col("weight")) / (pl.col("__w") - pl.col("weight")))
            .alias("loo_value")
        )
    )
    return out.drop("weight", "__sum", "__w")
