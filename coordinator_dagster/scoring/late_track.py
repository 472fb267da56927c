"""The late track: answers to live rounds asked after their cutoff (status LATE), scored apart.

A LATE answer is scored by the contract's own truth and scoring functions, exactly as a PENDING
one would be, but into the `late_scores` table: never into `scores`, so it never reaches the
snapshots, the leaderboard, a checkpoint or a Merkle root, and is never rewarded. The summary
per model (late answers, their mean lateness, their mean late score) is what the API serves.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import polars as pl

from coordinator_dagster.scoring.scores import score_predictions
from coordinator_dagster.statuses import PredictionStatus

if TYPE_CHECKING:
    from coordinator_dagster.contracts import CrunchContract

SUMMARY_SCHEMA = pl.Schema(
    {
        "model_id": pl.String,
        "late_prediction_count": pl.UInt32,
        "mean_lateness_seconds": pl.Float64,
        "scored_count": pl.UInt32,
        "mean_late_score": pl.Float64,
    }
)


def late_predictions(predictions: pl.DataFrame) -> pl.DataFrame:
    return predictions.filter(pl.col("status") == PredictionStatus.LATE.value)


def score_late(
    contract: "CrunchContract", predictions: pl.DataFrame, inputs: pl.DataFrame, feed: pl.DataFrame, now: dt.datetime
) -> pl.DataFrame:
    """Scores of the LATE predictions due by `now`, in the `scores` schema. `score_predictions`
    scores only PENDING rows, so the LATE ones are handed to it relabelled: one scoring rule."""
    late = late_predictions(predictions).with_columns(pl.lit(PredictionStatus.PENDING.value).alias("status"))
    return score_predictions(contract, late, inputs, feed, now)


def late_summary(late: pl.DataFrame, late_scores: pl.DataFrame) -> pl.DataFrame:
    """Per model: LATE predictions, their mean lateness (predicted_at - round_ts, seconds), how
    many have a successful late score and the mean of those scores (null before any)."""
    if late.is_empty():
        return pl.DataFrame(schema=SUMMARY_SCHEMA)
    scored = late_scores.filter(pl.col("success")).select("prediction_id", pl.col("value").alias("late_score"))
    return (
        late.join(scored, on="prediction_id", how="left")
        .group_by("model_id")
        .agg(
            pl.len().alias("late_prediction_count"),
            ((pl.col("predicted_at") - pl.col("round_ts")).dt.total_microseconds() / 1_000_000).mean().alias("mean_lateness_seconds"),
            pl.col("late_score").count().alias("scored_count"),
            pl.col("late_score").mean().alias("mean_late_score"),
        )
        .sort("model_id")
        .cast(dict(SUMMARY_SCHEMA))
    )
