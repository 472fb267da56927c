"""Prediction rows as they are recorded: one model's answer to one round's input, the ABSENT rows
of rounds missed, and the registered-models table. Shared by the `predictions` asset (catch-up,
replays) and the round engine (live rounds), so both record a round the same way."""

from __future__ import annotations

import datetime as dt

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.models.rounds import raw_input
from coordinator_dagster.models.runner import ModelSpec, RoundRunner
from coordinator_dagster.statuses import PredictionStatus


def predict_rows(runner: RoundRunner, todo: pl.DataFrame, predicted_at: dt.datetime) -> pl.DataFrame:
    """Every registered model's answer to each input row of `todo`, in round order."""
    rows = []
    for item in todo.sort("round_ts", "scope_key").iter_rows(named=True):
        for outcome in runner.predict_round(raw_input(item), item["horizon_seconds"], item["step_seconds"]):
            rows.append(
                {
                    "prediction_id": f"{item['input_id']}/{outcome.model_id}",
                    "input_id": item["input_id"],
                    "scope_key": item["scope_key"],
                    "subject": item["subject"],
                    "model_id": outcome.model_id,
                    "round_ts": item["round_ts"],
                    "resolvable_at": item["resolvable_at"],
                    "status": outcome.status,
                    "value": outcome.value,
                    "output": outcome.output,
                    "failed_reason": outcome.failed_reason,
                    "latency_ms": outcome.latency_ms,
                    "predicted_at": predicted_at,
                }
            )
    return pl.DataFrame(rows, schema=schemas.PREDICTIONS) if rows else schemas.empty(schemas.PREDICTIONS)


def late_track(rows: pl.DataFrame, late_scopes: set[str]) -> pl.DataFrame:
    """Valid answers to the rounds of `late_scopes` (asked after their cutoff) recorded LATE; their
    lateness is `predicted_at - round_ts`. FAILED and ABSENT stay as they are."""
    if not late_scopes:
        return rows
    late = (pl.col("status") == PredictionStatus.PENDING.value) & pl.col("scope_key").is_in(list(late_scopes))
    return rows.with_columns(pl.when(late).then(pl.lit(PredictionStatus.LATE.value)).otherwise(pl.col("status")).alias("status"))


def missed_rows(todo: pl.DataFrame, model_ids: list[str], now: dt.datetime) -> pl.DataFrame:
    """ABSENT rows, with the reason, for rounds the node did not predict in their time."""
    if todo.is_empty():
        return schemas.empty(schemas.PREDICTIONS)
    models = pl.DataFrame({"model_id": model_ids})
    rows = todo.join(models, how="cross").with_columns(
        (pl.col("input_id") + "/" + pl.col("model_id")).alias("prediction_id"),
        pl.lit(PredictionStatus.ABSENT.value).alias("status"),
        pl.lit(None, dtype=pl.Float64).alias("value"),
        pl.lit(None, dtype=pl.String).alias("output"),
        pl.format("round missed: the node was not predicting at {} (recorded at {})", pl.col("round_ts"), pl.lit(now)).alias(
            "failed_reason"
        ),
        pl.lit(None, dtype=pl.Float64).alias("latency_ms"),
        pl.lit(now).alias("predicted_at"),
    )
    return schemas.conform(rows.select(schemas.PREDICTIONS.names()), schemas.PREDICTIONS, "predictions")


def registry(specs: list[ModelSpec], statuses: dict[str, str], existing: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """The registered models, upserted: a model keeps its first `joined_at`; a model that leaves
    the manifest stays (inactive, status "removed"), so checkpoints of periods it took part in
    still find its cruncher index; one that comes back is active again."""
    current = pl.DataFrame(
        [
            {
                "model_id": spec.model_id,
                "name": spec.name,
                "cruncher": spec.cruncher,
                "cruncher_index": spec.cruncher_index,
                "entrypoint": spec.entrypoint,
                "joined_at": now,
                "active": True,
                "status": statuses.get(spec.model_id, "healthy"),
            }
            for spec in specs
        ],
        schema=schemas.MODELS,
    )
    joined = existing.select("model_id", pl.col("joined_at").alias("first_joined"))
    current = current.join(joined, on="model_id", how="left").with_columns(
        pl.coalesce("first_joined", "joined_at").alias("joined_at")
    ).drop("first_joined")
    gone = existing.join(current.select("model_id"), on="model_id", how="anti").with_columns(
        pl.lit(False).alias("active"), pl.lit("removed").alias("status")
    )
    return pl.concat([current, gone]).sort("model_id")
