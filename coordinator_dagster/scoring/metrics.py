"""Portfolio metrics per model over a snapshot window, and the registry custom metrics join.

A metric is a function `(model_rows, all_rows) -> float | None` over scored rows (columns
model_id, input_id, round_ts, subject, prediction_value, profit, value); `all_rows` holds every
model's rows of the same window, for cross-model metrics. None means "not enough data".

Each metric is written twice on purpose, once row-wise (the registry's reference form, which a
custom metric follows) and once vectorized over many windows at once (what scoring runs); the
tests compare the two, which is why both stay side by side in this module of about 400 lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl

Metric = Callable[[pl.DataFrame, pl.DataFrame], float | None]
# A vectorized metric takes every model's scored rows of a window and returns model_id → value.
FrameMetric = Callable[[pl.DataFrame], pl.DataFrame]
METRICS: dict[str, Metric] = {}
FRAME_METRICS: dict[str, FrameMetric] = {}

# Ratios without a finite value (a perfectly consistent IC, a strategy that never lost) are
# capped here, as the reference engine does, so a perfect model ranks first instead of missing.
RATIO_CAP = 10.0
# The reference engine's chunking for IC Sharpe: chunks of about this many rounds, at least
# IC_SHARPE_MIN_CHUNKS of them (of at least two rounds), so a short window still gets a value.
IC_SHARPE_CHUNK_ROUNDS = 10
IC_SHARPE_MIN_CHUNKS = 3


def register_metric(name: str) -> Callable[[Metric], Metric]:
    """Register a metric under `name`; contracts list metric names in `metrics`."""

    def add(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn

    return add


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _capped_ratio(mean: float, spread: float) -> float:
    """mean / spread within ±RATIO_CAP; a zero spread gives the cap with the mean's sign."""
    if spread < 1e-12:
        return math.copysign(RATIO_CAP, mean) if abs(mean) > 1e-12 else 0.0
    return max(-RATIO_CAP, min(RATIO_CAP, mean / spread))


def ic_sharpe_chunk_size(n: int) -> int:
    """Rounds per IC Sharpe chunk for a window of n rounds; only whole chunks count."""
    return max(2, n // max(IC_SHARPE_MIN_CHUNKS, n // IC_SHARPE_CHUNK_ROUNDS))


def spearman(a: np.ndarray, b: np.ndarray, min_points: int = 3) -> float | None:
    """Spearman's rank correlation with tied ranks averaged (as scipy does)."""
    if len(a) < min_points:
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
    """Mean / standard deviation of the IC over consecutive chunks of the window (in round order).

    Chunks as the reference engine cuts them (`ic_sharpe_chunk_size`; a trailing partial chunk is
    left out); a chunk whose predictions or returns are constant has no IC. Under four rounds or
    under two chunk ICs: None. Capped at ±RATIO_CAP (identical chunk ICs give the cap).
    """
    if rows.height < 4:
        return None
    ordered = rows.sort("round_ts", "subject")
    size = ic_sharpe_chunk_size(ordered.height)
    predictions, profits = ordered["prediction_value"].to_numpy(), ordered["profit"].to_numpy()
    ics = [
        ic
        for start in range(0, ordered.height - size + 1, size)
        if (ic := spearman(predictions[start : start + size], profits[start : start + size], min_points=2)) is not None
    ]
    if len(ics) < 2:
        return None
    return _capped_ratio(float(np.mean(ics)), float(np.std(ics)))


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
    return _finite(float(_directional_returns(rows).mean()))


@register_metric("max_drawdown")
def max_drawdown(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    """Worst peak-to-trough fall of the cumulative score (≤ 0)."""
    if rows.is_empty():
        return None
    curve = np.cumsum(rows.sort("round_ts", "subject")["value"].fill_null(0.0).to_numpy())
    peaks = np.maximum.accumulate(np.concatenate([[0.0], curve]))[1:]
    return _finite(float((curve - peaks).min()))


def _directional_returns(rows: pl.DataFrame) -> np.ndarray:
    """sign(prediction) × realised return per round: what trading the model's calls earned."""
    return np.sign(rows["prediction_value"].to_numpy()) * rows["profit"].to_numpy()


@register_metric("sortino_ratio")
def sortino_ratio(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    """Mean directional return / downside deviation (root mean square of the losing rounds),
    on the realised returns, not the score values; capped at ±RATIO_CAP (never lost: the cap)."""
    returns = _directional_returns(rows.drop_nulls("profit"))
    if len(returns) < 2:
        return None
    downside = returns[returns < 0]
    spread = math.sqrt((downside**2).mean()) if len(downside) else 0.0
    return _capped_ratio(float(returns.mean()), spread)


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
    # In model order: a mean of floats depends on the order it adds them in, and polars hands
    # out groups in any order, which made re-scored snapshots differ in the last bits.
    others = all_rows.filter(pl.col("model_id") != model_id).group_by("model_id")
    for (other_id,), theirs in sorted(others, key=lambda group: group[0]):
        paired = mine.join(theirs.select("input_id", "prediction_value"), on="input_id")
        corr = spearman(paired["mine"].to_numpy(), paired["prediction_value"].to_numpy())
        if corr is not None:
            correlations.append(corr)
    return float(np.mean(correlations)) if correlations else None


def _rank_corr(a: str, b: str, min_rows: int = 3) -> pl.Expr:
    """Spearman (average ranks, precomputed by `_with_ranks`) of a and b within a group; None
    when a side is constant or the group has fewer than `min_rows` rows. For group_by().agg()."""
    ra, rb = pl.col(f"__rank_{a}"), pl.col(f"__rank_{b}")
    return pl.when((pl.len() >= min_rows) & (ra.std() > 0) & (rb.std() > 0)).then(pl.corr(ra, rb)).otherwise(None)


def _frame_capped_ratio(mean: pl.Expr, spread: pl.Expr) -> pl.Expr:
    """`_capped_ratio` as an expression."""
    return (
        pl.when(spread < 1e-12)
        .then(pl.when(mean.abs() > 1e-12).then(mean.sign() * RATIO_CAP).otherwise(0.0))
        .otherwise((mean / spread).clip(-RATIO_CAP, RATIO_CAP))
    )


def _with_ranks(rows: pl.DataFrame, over: list[str]) -> pl.DataFrame:
    return rows.with_columns(
        pl.col("prediction_value").rank("average").over(over).alias("__rank_prediction_value"),
        pl.col("profit").rank("average").over(over).alias("__rank_profit"),
    )


def _frame_ic(rows: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return _with_ranks(rows, by).group_by(by, maintain_order=True).agg(_rank_corr("prediction_value", "profit").alias("ic"))


def _frame_ic_sharpe(rows: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    n = pl.len().over(by)
    size = pl.max_horizontal(pl.lit(2), n // pl.max_horizontal(pl.lit(IC_SHARPE_MIN_CHUNKS), n // IC_SHARPE_CHUNK_ROUNDS))
    chunked = (
        rows.sort(*by, "round_ts", "subject", maintain_order=True)
        .with_columns((pl.int_range(pl.len()).over(by) // size).alias("__chunk"), (n // size).alias("__chunks"), n.alias("__n"))
        .filter((pl.col("__chunk") < pl.col("__chunks")) & (pl.col("__n") >= 4))
    )
    ics = (
        _with_ranks(chunked, [*by, "__chunk"])
        .group_by(*by, "__chunk", maintain_order=True)
        .agg(_rank_corr("prediction_value", "profit", min_rows=2).alias("ic"))
        .drop_nulls("ic")
        # group_by returns groups in any order; summing floats in a fixed order keeps re-runs
        # byte-identical.
        .sort(*by, "__chunk")
    )
    ic = pl.col("ic")
    return ics.group_by(by, maintain_order=True).agg(
        pl.when(pl.len() >= 2).then(_frame_capped_ratio(ic.mean(), ic.std(ddof=0))).otherwise(None).alias("ic_sharpe")
    )


def _frame_simple(rows: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    sign = pl.col("prediction_value").sign()
    returns = (sign * pl.col("profit")).drop_nulls()
    downside = returns.filter(returns < 0)
    spread = pl.when(downside.len() > 0).then(downside.pow(2).mean().sqrt()).otherwise(0.0)
    return rows.group_by(by, maintain_order=True).agg(
        (sign == pl.col("profit").sign()).mean().alias("hit_rate"),
        (sign * pl.col("profit")).mean().alias("mean_return"),
        pl.when(returns.len() >= 2).then(_frame_capped_ratio(returns.mean(), spread)).otherwise(None).alias("sortino_ratio"),
    )


def _frame_max_drawdown(rows: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    curve = rows.sort(*by, "round_ts", "subject").with_columns(
        pl.col("value").fill_null(0.0).cum_sum().over(by).alias("__curve")
    )
    peak = pl.max_horizontal(pl.col("__curve").cum_max().over(by), pl.lit(0.0))
    return curve.with_columns((pl.col("__curve") - peak).alias("__dd")).group_by(by, maintain_order=True).agg(pl.col("__dd").min().alias("max_drawdown"))


def _frame_turnover(rows: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    diffs = rows.sort(*by, "subject", "round_ts").with_columns(
        pl.col("prediction_value").diff().abs().over(*by, "subject").alias("__turn")
    )
    return diffs.group_by(by, maintain_order=True).agg(pl.col("__turn").mean().alias("turnover"))


def _rank_correlation_means(ranks: np.ndarray) -> list[float | None]:
    """Each column's mean Spearman correlation with every other column, from average ranks of a
    complete (no missing answer) inputs × models matrix."""
    constant = ranks.std(axis=0) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(ranks, rowvar=False)
    corr[:, constant] = np.nan
    corr[constant, :] = np.nan
    np.fill_diagonal(corr, np.nan)
    # Each row's nanmean, all rows at once: the sum over a row's non-NaN entries and their count,
    # as `np.nanmean` forms them (a row reduced over the contiguous last axis adds in the same
    # order as that row alone, so the values are the same to the bit); None for an all-NaN row.
    missing = np.isnan(corr)
    counts = (~missing).sum(axis=1)
    sums = np.where(missing, 0.0, corr).sum(axis=1)
    return [None if n == 0 else float(total / n) for total, n in zip(sums.tolist(), counts.tolist(), strict=True)]


def _correlation_means(group: pl.DataFrame) -> pl.DataFrame:
    """Mean Spearman correlation of each model against every other model of one window.

    When every model answered every input (the normal case) one rank-correlation matrix gives
    all pairs at once; otherwise each pair is computed on the inputs both answered."""
    models = sorted(group["model_id"].unique().to_list())
    schema = {"model_id": pl.String, "model_correlation": pl.Float64}
    if len(models) < 2:
        return pl.DataFrame({"model_id": models, "model_correlation": [None] * len(models)}, schema=schema)
    matrix = group.pivot(on="model_id", index="input_id", values="prediction_value", aggregate_function="first").select(models)
    if matrix.null_count().sum_horizontal()[0] == 0 and matrix.height >= 3:
        means = _rank_correlation_means(matrix.select(pl.all().rank("average")).to_numpy().astype(float))
    else:
        means = [model_correlation(group.filter(pl.col("model_id") == m), group) for m in models]
    return pl.DataFrame({"model_id": models, "model_correlation": means}, schema=schema)


def _frame_model_correlation(rows: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    periods = [k for k in by if k != "model_id"]
    if not periods:
        return _correlation_means(rows)
    # One pivot over every window (rows: window × input, columns: models), ranked per window,
    # instead of a pivot per window: with a thousand windows the per-window frame work was
    # most of the snapshots' cost. Each window's slice is the matrix `_correlation_means` builds
    # (same rows in the same order, same ranks), so the values are the same to the bit.
    models = sorted(rows["model_id"].unique().to_list())
    wide = rows.pivot(on="model_id", index=[*periods, "input_id"], values="prediction_value", aggregate_function="first", maintain_order=True)
    wide = wide.with_columns(pl.int_range(pl.len()).alias("__row")).sort(*periods, "__row", maintain_order=True)
    ranked = wide.select(pl.col(m).rank("average").over(periods).cast(pl.Float64) for m in models).to_numpy()
    present = wide.select(pl.col(m).is_not_null() for m in models).to_numpy()
    bounds = wide.select(periods).with_row_index("__i").group_by(periods, maintain_order=True).agg(pl.col("__i").min().alias("lo"), pl.len().alias("n"))
    out: dict[str, list] = {"model_id": [], "model_correlation": [], **{k: [] for k in periods}}
    for key, lo, n in zip(bounds.select(periods).iter_rows(), bounds["lo"], bounds["n"], strict=True):
        have = present[lo : lo + n]
        columns = np.flatnonzero(have.any(axis=0)).tolist()
        if len(columns) >= 2 and n >= 3 and have[:, columns].all():
            names, means = [models[i] for i in columns], _rank_correlation_means(ranked[lo : lo + n][:, columns])
        else:
            fallback = _correlation_means(rows.filter(*[pl.col(k) == v for k, v in zip(periods, key, strict=True)]))
            names, means = fallback["model_id"].to_list(), fallback["model_correlation"].to_list()
        out["model_id"] += names
        out["model_correlation"] += means
        for k, v in zip(periods, key, strict=True):
            out[k] += [v] * len(names)
    schema = {"model_id": pl.String, "model_correlation": pl.Float64, **{k: rows.schema[k] for k in periods}}
    return pl.DataFrame(out, schema=schema).select(*periods, "model_id", "model_correlation")


for _name in ("hit_rate", "mean_return", "sortino_ratio"):
    FRAME_METRICS[_name] = _frame_simple
FRAME_METRICS["ic"] = _frame_ic
FRAME_METRICS["ic_sharpe"] = _frame_ic_sharpe
FRAME_METRICS["max_drawdown"] = _frame_max_drawdown
FRAME_METRICS["turnover"] = _frame_turnover
FRAME_METRICS["model_correlation"] = _frame_model_correlation


# ---- ensemble-aware metrics ---------------------------------------------------------------------
# They read two extra columns that `ensembles.with_ensemble_columns` adds to the scored rows:
# `ensemble_value` (the contract's first ensemble's prediction for the input) and `loo_value`
# (that ensemble without this model; null when the model is not a member).
ENSEMBLE_METRICS = frozenset({"fnc", "contribution", "ensemble_correlation"})


def _has_ensemble(rows: pl.DataFrame) -> bool:
    return "ensemble_value" in rows.columns


@register_metric("ensemble_correlation")
def ensemble_correlation(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    """Spearman correlation of the model's predictions with the ensemble's."""
    if not _has_ensemble(rows):
        return None
    paired = rows.drop_nulls("ensemble_value")
    return spearman(paired["prediction_value"].to_numpy(), paired["ensemble_value"].to_numpy())


@register_metric("fnc")
def fnc(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    """Ensemble-neutral correlation: Pearson correlation with the realised return of the part of
    the model's predictions that the ensemble's predictions do not explain (p − β·e, β = cov/var)."""
    if not _has_ensemble(rows):
        return None
    paired = rows.drop_nulls("ensemble_value")
    if paired.height < 3:
        return None
    p, e, y = (paired[c].to_numpy() for c in ("prediction_value", "ensemble_value", "profit"))
    if e.var() == 0:
        return None
    residual = p - (np.mean((p - p.mean()) * (e - e.mean())) / e.var()) * e
    if residual.std() == 0 or y.std() == 0:
        return None
    return _finite(float(np.corrcoef(residual, y)[0, 1]))


@register_metric("contribution")
def contribution(rows: pl.DataFrame, _all: pl.DataFrame) -> float | None:
    """Leave-one-out: the ensemble's mean directional return minus that of the ensemble without
    this model, over the inputs where the model was a member."""
    if not _has_ensemble(rows):
        return None
    member = rows.drop_nulls(["loo_value", "ensemble_value"])
    if member.is_empty():
        return None
    y = member["profit"].to_numpy()
    return _finite(float((np.sign(member["ensemble_value"].to_numpy()) * y).mean() - (np.sign(member["loo_value"].to_numpy()) * y).mean()))


def _frame_ensemble(rows: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    if not _has_ensemble(rows):
        return rows.group_by(by, maintain_order=True).agg(*[pl.lit(None, dtype=pl.Float64).alias(n) for n in ENSEMBLE_METRICS])
    paired = rows.filter(pl.col("ensemble_value").is_not_null()).with_columns(
        pl.col("prediction_value").rank("average").over(by).alias("__rank_prediction_value"),
        pl.col("ensemble_value").rank("average").over(by).alias("__rank_ensemble_value"),
    )
    p, e, y = pl.col("prediction_value"), pl.col("ensemble_value"), pl.col("profit")
    e_var = e.var(ddof=0)
    beta = ((p - p.mean()) * (e - e.mean())).mean() / e_var
    residual = p - beta * e
    fnc_expr = (
        pl.when((pl.len() >= 3) & (e_var > 0) & (residual.std() > 0) & (y.std() > 0)).then(pl.corr(residual, y)).otherwise(None)
    )
    neutral = paired.group_by(by, maintain_order=True).agg(
        _rank_corr("prediction_value", "ensemble_value").alias("ensemble_correlation"),
        fnc_expr.alias("fnc"),
    )
    member = rows.filter(pl.col("loo_value").is_not_null() & pl.col("ensemble_value").is_not_null())
    loo = member.group_by(by, maintain_order=True).agg(
        ((e.sign() * y).mean() - (pl.col("loo_value").sign() * y).mean()).alias("contribution")
    )
    return neutral.join(loo, on=by, how="full", coalesce=True)


for _name in ENSEMBLE_METRICS:
    FRAME_METRICS[_name] = _frame_ensemble


def compute_metrics(names: list[str], rows: pl.DataFrame, all_rows: pl.DataFrame) -> dict[str, float | None]:
    """One model's metrics, row-wise (the reference form; custom metrics use it)."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise KeyError(f"unknown metrics {unknown}; registered: {sorted(METRICS)}")
    return {name: METRICS[name](rows, all_rows) for name in names}


def compute_metrics_frame(names: list[str], rows: pl.DataFrame, keys: pl.DataFrame, by: list[str] | None = None) -> pl.DataFrame:
    """Metrics for every group of `keys` (columns `by`, default just model_id): `by` plus one
    Float64 column per metric name.

    Built-in metrics run vectorized over all groups at once. A registered metric without a frame
    form, or a built-in name re-registered with a custom function, runs per group with the
    group's rows and all rows of its window (same non-model keys), so custom behaviour is never
    silently shadowed.
    """
    by = by or ["model_id"]
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise KeyError(f"unknown metrics {unknown}; registered: {sorted(METRICS)}")
    out = keys.select(by)
    done: set[int] = set()
    window_keys = [k for k in by if k != "model_id"]
    for name in names:
        frame_fn = FRAME_METRICS.get(name)
        if frame_fn is not None and METRICS[name] is _BUILTIN_ROW_METRICS.get(name):
            if id(frame_fn) in done or rows.is_empty():
                continue
            computed = frame_fn(rows, by)
            keep = [c for c in computed.columns if c in names and c not in out.columns]
            out = out.join(computed.select(*by, *keep), on=by, how="left")
            done.add(id(frame_fn))
        else:
            values = []
            for key in out.iter_rows(named=True):
                window = rows.filter(*[pl.col(k) == key[k] for k in window_keys]) if window_keys else rows
                values.append(METRICS[name](window.filter(pl.col("model_id") == key["model_id"]), window))
            out = out.with_columns(pl.Series(name, values, dtype=pl.Float64))
    for name in names:
        if name not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    # Non-finite results (e.g. a zero-variance division) are reported as missing, never as NaN.
    return out.select(*by, *[pl.col(n).cast(pl.Float64).fill_nan(None) for n in names])


_BUILTIN_ROW_METRICS = dict(METRICS)
