"""Leaderboard and checkpoint ranking over snapshots.

Ranks are dense over the ranking value: models whose ranking value is exactly equal share a
rank, and the next distinct value takes the next rank (values 0.9, 0.9, 0.5 → ranks 1, 1, 2). A
model whose ranking value is null (or NaN) has no rank (null) and is listed after the ranked ones.
The row order is the ranking value in the configured direction (missing values last), then more
scored predictions, then model_id ascending; it decides nothing but the listing order and which
entry comes first. Both the leaderboard and checkpoints use this one rule, so a model's rank never
depends on row order in the lake.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.ensembles import is_ensemble

if TYPE_CHECKING:
    from coordinator_dagster.contracts import CrunchContract


def rank(frame: pl.DataFrame, value_column: str, direction: str, count_column: str) -> pl.DataFrame:
    """`frame` sorted best first with a dense 1-based `rank` column prepended (null when the
    ranking value is null or NaN)."""
    descending = direction == "desc"
    # NaN would sort above every number; it is no value, so it ranks like null.
    key = pl.col(value_column).cast(pl.Float64).fill_nan(None)
    ordered = frame.with_columns(key.alias("_rank_key")).sort(
        ["_rank_key", count_column, "model_id"], descending=[descending, True, False], nulls_last=True
    )
    dense = pl.col("_rank_key").rank("dense", descending=descending).cast(pl.Int64).alias("rank")
    return ordered.select(dense, pl.all().exclude("_rank_key", "rank"))


def _metric_column(key: str) -> pl.Expr:
    """A metric stored inside result_summary, as a float column."""
    return (
        pl.col("result_summary")
        .str.json_path_match(f"$.{key}")
        .cast(pl.Float64, strict=False)
        .alias(key)
    )


def leaderboard(
    contract: "CrunchContract", snapshots: pl.DataFrame, models: pl.DataFrame, now: dt.datetime | None = None
) -> pl.DataFrame:
    """Per model, the mean snapshot value of each window ending at the newest snapshot.

    Windows are anchored at the newest `period_end` in the data (capped at `now`: the hour in
    progress ends in the future) rather than the wall clock, so the same snapshots always give the
    same leaderboard once their hours are over. A window's value is the mean of the snapshot
    values whose period ends inside it. Ranking uses `aggregation.ranking_key`: a window name, or
    a metric name (then the metric's mean over the first window).
    """
    agg = contract.aggregation
    schema = schemas.leaderboard_schema(agg.windows)
    if snapshots.is_empty():
        return schemas.empty(schema)
    as_of = snapshots["period_end"].max()
    if now is not None and now < as_of:
        as_of = now
    columns = []
    for name, hours in agg.windows.items():
        inside = pl.col("period_end") > as_of - dt.timedelta(hours=hours)
        columns.append(pl.col("value").filter(inside).mean().alias(name))
    first_hours = next(iter(agg.windows.values()))
    first_window = pl.col("period_end") > as_of - dt.timedelta(hours=first_hours)
    key = agg.ranking_key
    ranking = (
        pl.lit(None, dtype=pl.Float64)
        if key in agg.windows
        else _metric_column(key).filter(first_window).mean()
    )
    per_model = snapshots.group_by("model_id", maintain_order=True).agg(
        *columns,
        pl.col("scored_count").sum().alias("prediction_count"),
        ranking.alias("ranking_value"),
    )
    if key in agg.windows:
        per_model = per_model.with_columns(pl.col(key).alias("ranking_value"))
    per_model = per_model.with_columns(is_ensemble(pl.col("model_id")).alias("is_ensemble"))
    names = models.select("model_id", pl.col("name").alias("model_name"), "cruncher") if not models.is_empty() else None
    if names is not None:
        per_model = per_model.join(names, on="model_id", how="left")
    else:
        per_model = per_model.with_columns(
            pl.lit(None, dtype=pl.String).alias("model_name"), pl.lit(None, dtype=pl.String).alias("cruncher")
        )
    # Real models are ranked among themselves; ensembles are listed after them, unranked.
    real = rank(per_model.filter(~pl.col("is_ensemble")), "ranking_value", agg.ranking_direction, "prediction_count")
    virtual = per_model.filter(pl.col("is_ensemble")).sort("model_id").with_columns(pl.lit(None, dtype=pl.Int64).alias("rank"))
    ranked = pl.concat([real, virtual.select(real.columns)]).with_columns(
        pl.lit(key).alias("ranking_key"), pl.lit(as_of).cast(schemas.UTC_TS).alias("as_of")
    )
    return schemas.conform(ranked.select(schema.names()), schema, "leaderboard")


def checkpoint_entries(
    contract: "CrunchContract", snapshots: pl.DataFrame, models: pl.DataFrame
) -> list[dict[str, Any]]:
    """Ranked entries of one checkpoint period: scored-count-weighted means per model.

    The ranking metric is `aggregation.ranking_key` when it names a metric, and otherwise (a
    leaderboard window name, which has no meaning inside one period) the value field itself.
    Models without a single scored prediction in the period take no part.
    """
    return rank_checkpoint_rows(contract, checkpoint_rows(contract, snapshots), models)


def checkpoint_rows(contract: "CrunchContract", snapshots: pl.DataFrame) -> pl.DataFrame:
    """The snapshots a checkpoint ranks, with their metrics as columns: row by row, so the rows
    of a period are those of its hours put together (a long-lived scorer keeps them per hour)."""
    agg = contract.aggregation
    key = agg.ranking_key if agg.ranking_key not in agg.windows else agg.value_field
    # Ensembles are virtual: they have no cruncher and take no reward.
    frame = snapshots.filter((pl.col("scored_count") > 0) & ~is_ensemble(pl.col("model_id")))
    if key != agg.value_field:
        frame = frame.with_columns(_metric_column(key).alias("ranking_metric"))
    else:
        frame = frame.with_columns(pl.col("value").alias("ranking_metric"))
    return frame.with_columns(*[_metric_column(m) for m in _checkpoint_metrics(contract)])


def _checkpoint_metrics(contract: "CrunchContract") -> list[str]:
    return [m for m in contract.metrics if m not in ("value", "ranking_metric")]


def rank_checkpoint_rows(contract: "CrunchContract", rows: pl.DataFrame, models: pl.DataFrame) -> list[dict[str, Any]]:
    """`checkpoint_entries` from the period's `checkpoint_rows` (in any order of hours)."""
    agg = contract.aggregation
    key = agg.ranking_key if agg.ranking_key not in agg.windows else agg.value_field
    if rows.is_empty():
        return []
    metric_names = _checkpoint_metrics(contract)
    frame = rows.sort("period_start", "model_id")

    def weighted(column: str) -> pl.Expr:
        weight = pl.col("scored_count").filter(pl.col(column).is_not_null())
        # A model without any value of this column gets null, not 0/0 = NaN (not valid JSON).
        return ((pl.col(column) * pl.col("scored_count")).sum() / weight.sum()).fill_nan(None)

    per_model = frame.group_by("model_id", maintain_order=True).agg(
        weighted("value").alias("value"),
        weighted("ranking_metric").alias("ranking_value"),
        *[weighted(m).alias(m) for m in metric_names],
        pl.col("prediction_count").sum(),
        pl.col("scored_count").sum(),
        pl.len().alias("snapshot_count"),
    )
    if not models.is_empty():
        per_model = per_model.join(
            models.select("model_id", "name", "cruncher", "cruncher_index"), on="model_id", how="left"
        )
    else:
        per_model = per_model.with_columns(
            pl.lit(None, dtype=pl.String).alias("name"),
            pl.lit(None, dtype=pl.String).alias("cruncher"),
            pl.lit(None, dtype=pl.Int64).alias("cruncher_index"),
        )
    ranked = rank(per_model, "ranking_value", agg.ranking_direction, "scored_count")
    entries = ranked.with_columns(pl.lit(key).alias("ranking_key")).to_dicts()
    return json.loads(json.dumps(entries, default=str))


def compare_versions(
    contract: "CrunchContract",
    snapshots_a: pl.DataFrame,
    snapshots_b: pl.DataFrame,
    models: pl.DataFrame,
    labels: tuple[str, str] = ("a", "b"),
) -> pl.DataFrame:
    """Two scoring versions' leaderboards over the same snapshots' range, side by side:
    per model each version's rank and ranking value, and how many places the model moved."""
    boards = []
    for label, snapshots in zip(labels, (snapshots_a, snapshots_b), strict=True):
        board = leaderboard(contract, snapshots, models)
        boards.append(board.select("model_id", pl.col("rank").alias(f"rank_{label}"), pl.col("ranking_value").alias(f"value_{label}")))
    joined = boards[0].join(boards[1], on="model_id", how="full", coalesce=True)
    a, b = labels
    return joined.with_columns((pl.col(f"rank_{a}") - pl.col(f"rank_{b}")).alias("places_gained")).sort(f"rank_{b}", "model_id", nulls_last=True)
