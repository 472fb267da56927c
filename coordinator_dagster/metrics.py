"""Portfolio metrics per model over a snapshot window, and the registry custom metrics join.

A metric is a function `(model_rows, all_rows) -> float | None` over scored rows (columns
model_id, input_id, round_ts, subject, prediction_value, profit, value); `all_rows` holds every
model's rows of the same window, for cross-model metrics. None means "not enough data".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl

Metric = Callable[[pl.DataFrame, pl.DataFrame], float | None]
METRICS: dict[str, Metric] = {}

# IC Sharpe splits the window into this many consecutive chunks (by round time).
IC_SHARPE_CHUNKS = 6


def register_metric(name: str) -> Callable[[Metric], Metric]:
    """Register a metric under `name`; contracts list metric names in `metrics`."""

    def add(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn

    return add


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation with tied ranks averaged (as scipy does)."""
    if len(a) < 3:
        return None
    ra = pl.Series(a).rank("average").to_numpy()
    rb = pl.Series(b).rank("average").to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return None
    return _finite(float(np.corrcoef(ra, rb)[0, 1]))


@register_metric("ic")
def information_coefficient(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    return spearman(rows["prediction_value"].to_numpy(), rows["profit"].to_numpy())


@register_metric("ic_sharpe")
def ic_sharpe(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    ordered = rows.sort("round_ts")
    chunks = np.array_split(np.arange(ordered.height), IC_SHARPE_CHUNKS)
    ics = [
        ic
        for idx in chunks
        if len(idx)
        and (ic := spearman(ordered["prediction_value"].to_numpy()[idx], ordered["profit"].to_numpy()[idx]))
        is not None
    ]
    if len(ics) < 2 or np.std(ics) == 0:
        return None
    return _finite(float(np.mean(ics) / np.std(ics)))


@register_metric("hit_rate")
def hit_rate(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    if rows.is_empty():
        return None
    hits = np.sign(rows["prediction_value"].to_numpy()) == np.sign(rows["profit"].to_numpy())
    return float(hits.mean())


@register_metric("mean_return")
def mean_return(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    if rows.is_empty():
        return None
    return _finite(float((np.sign(rows["prediction_value"].to_numpy()) * rows["profit"].to_numpy()).mean()))


@register_metric("max_drawdown")
def max_drawdown(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    """Worst peak-to-trough fall of the cumulative score (≤ 0)."""
    if rows.is_empty():
        return None
    curve = np.cumsum(rows.sort("round_ts", "subject")["value"].fill_null(0.0).to_numpy())
    peaks = np.maximum.accumulate(np.concatenate([[0.0], curve]))[1:]
    return _finite(float((curve - peaks).min()))


@register_metric("sortino_ratio")
def sortino_ratio(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    values = rows["value"].drop_nulls().to_numpy()
    downside = values[values < 0]
    if len(values) < 2 or len(downside) == 0:
        return None
    return _finite(float(values.mean() / math.sqrt((downside**2).mean())))


@register_metric("turnover")
def turnover(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    """Mean absolute change of the prediction between consecutive rounds of a subject."""
    diffs = rows.sort("round_ts").select(pl.col("prediction_value").diff().abs().over("subject"))
    series = diffs.to_series().drop_nulls()
    return _finite(float(series.mean())) if series.len() else None


@register_metric("model_correlation")
def model_correlation(rows: pl.DataFrame, all_rows: pl.DataFrame) -> float | None:
    """Mean Spearman correlation of this model's predictions with each other model's, on shared inputs."""
    model_id = rows["model_id"][0] if rows.height else None
    mine = rows.select("input_id", pl.col("prediction_value").alias("mine"))
    correlations = []
    for (other_id,), theirs in all_rows.filter(pl.col("model_id") != model_id).group_by("model_id"):
        paired = mine.join(theirs.select("input_id", "prediction_value"), on="input_id")
        corr = spearman(paired["mine"].to_numpy(), paired["prediction_value"].to_numpy())
        if corr is not None:
            correlations.append(corr)
    return float(np.mean(correlations)) if correlations else None


def compute_metrics(names: list[str], rows: pl.DataFrame, all_rows: pl.DataFrame) -> dict[str, float | None]:
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise KeyError(f"unknown metrics {unknown}; registered: {sorted(METRICS)}")
    return {name: METRICS[name](rows, all_rows) for name in names}
