"""Operator rules that disable weak orchestrator-hosted models (reported as LOW_PERFORMANCE).

A rule reads the leaderboard: a model whose score in one of its columns (a window such as
`score_recent`, or `ranking_value`) is below the operator's floor, after enough predictions to
judge it, is weak. Ensembles are never disabled: they are the node's own virtual models.
"""

from __future__ import annotations

import polars as pl


def weak_models(leaderboard: pl.DataFrame, column: str, floor: float, min_predictions: int = 0) -> list[str]:
    """Model ids below `floor` in `column` with at least `min_predictions` predictions, worst first."""
    if column not in leaderboard.columns:
        choices = [c for c, t in leaderboard.schema.items() if t == pl.Float64]
        raise ValueError(f"leaderboard has no column {column!r}; one of {choices}")
    weak = leaderboard.filter(
        ~pl.col("is_ensemble").fill_null(False)
        & (pl.col(column) < floor)
        & (pl.col("prediction_count").fill_null(0) >= min_predictions)
    )
    return weak.sort(column, "model_id")["model_id"].to_list()
