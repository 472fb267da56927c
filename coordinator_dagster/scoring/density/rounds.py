"""From density answers and prices to per-round CRPS totals, normalised round scores and the
asset-weighted overall score (the Synth rules).

- Realised increment of density i of step s in a round at T: price(T + (i+1)·s) − price(T + i·s),
  each price the closest recorded one (a tie goes to the earlier); a density whose two closest
  prices are the same record is left out, as the participant package does.
- Round CRPS of one model: Σ over its steps and densities of the CRPS on the step's grid, divided
  by the asset's half-width (comparable across assets), plus, for 1 h rounds of the volatility
  assets, the volatility term (`volatility`; `vol_crps`, null where the round has none). Lower is
  better. An answer whose densities cannot be simulated into price paths for that term is FAILED.
- Normalisation within a round (one asset, one horizon, one round time): the best CRPS of the
  round scores 1, the 95th percentile of the round's CRPS values (linear interpolation) and worse
  score 0, linear in between; with no spread every valid answer scores 1. The percentile is taken
  over the valid answers only, so models that miss a round do not move the others' scores. A
  missing (ABSENT) or invalid (FAILED) answer is given the round's worst CRPS and scores 0.
- Overall: per model, the mean per asset, weighted by the asset weights (an asset without a
  weight counts 1).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.density import crps as crps_grid
from coordinator_dagster.scoring.density import volatility
from coordinator_dagster.statuses import PredictionStatus

# crunch-synth 0.15.0's asset weights for the overall score (BTC = 1).
SYNTH_ASSET_WEIGHTS: dict[str, float] = {
    "BTC": 1.0, "ETH": 0.7064366394033871, "XAUT": 1.7370922597118699, "SOL": 0.6310037175639559,
    "SP500": 3.437935601155441, "NVDAX": 1.6028217601617174, "TSLAX": 1.6068755936957768,
    "AAPLX": 2.0916380815843123, "GOOGLX": 1.6827392777257926, "XRP": 0.5658394110809131,
    "HYPE": 0.4784547133706857, "WTIOIL": 0.8475062847978935, "SPCX": 0.4329342627683478,
}
WORST_QUANTILE = 0.95

ROUND_KEY = ["subject", "horizon_seconds", "performed_at"]


@dataclass(frozen=True)
class DensityAnswer:
    """One model's answer to one density round: canonical densities by step, or why there are none."""

    model_id: str
    subject: str
    profile: str
    horizon_seconds: int
    performed_at: dt.datetime
    densities: Mapping[int, list[dict[str, Any]]] | None
    status: str = PredictionStatus.PENDING
    failed_reason: str | None = None


@dataclass(frozen=True)
class CrpsConfig:
    """The integration grid and weights (Synth's by default)."""

    half_widths: Mapping[str, float] = field(default_factory=lambda: dict(crps_grid.SYNTH_HALF_WIDTHS))
    base_step_seconds: int = crps_grid.BASE_STEP_SECONDS
    num_points: int = crps_grid.NUM_POINTS
    asset_weights: Mapping[str, float] = field(default_factory=lambda: dict(SYNTH_ASSET_WEIGHTS))
    # The 1 h volatility term (crunch-synth ≥ 0.15, live since 22 September 2026); None: price CRPS only.
    volatility: volatility.VolatilityConfig | None = field(default_factory=volatility.VolatilityConfig)


def _closest(ts: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the closest recorded time to each `at` (a tie goes to the earlier record)."""
    pos = np.searchsorted(ts, at, side="left")
    before = np.clip(pos - 1, 0, len(ts) - 1)
    after = np.clip(pos, 0, len(ts) - 1)
    use_before = (pos == len(ts)) | ((pos > 0) & (at - ts[before] <= ts[after] - at))
    return np.where(use_before, before, after)


def _epoch(value: dt.datetime) -> int:
    return int(value.timestamp())


def _price_series(prices: pl.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """subject → (epoch seconds, prices), in time order."""
    return {
        subject: (part["ts_event"].dt.epoch("s").to_numpy(), part["price"].to_numpy())
        for (subject,), part in prices.sort("ts_event").group_by("subject")
    }


def realised_path(series: tuple[np.ndarray, np.ndarray], start: int, points: int, increment: int) -> np.ndarray:
    """Prices at start, start + increment, …: the closest record if within increment / 2, else NaN."""
    ts, price = series
    grid = start + increment * np.arange(points, dtype=np.int64)
    if not len(ts):
        return np.full(points, np.nan)
    nearest = _closest(ts, grid)
    return np.where(np.abs(ts[nearest] - grid) <= increment / 2, price[nearest], np.nan)


def volatility_terms(answers: list[DensityAnswer], series: Mapping[str, tuple[np.ndarray, np.ndarray]], config: volatility.VolatilityConfig) -> tuple[list[DensityAnswer], list[float | None]]:
    """Each answer's volatility term (None where its round has none), and the answers with those
    whose densities cannot be simulated turned FAILED with the reason."""
    checked, terms = [], []
    for answer in answers:
        term = None
        if answer.status == PredictionStatus.PENDING and answer.subject in series and config.applies(answer.subject, answer.densities or {}):
            increment = min(answer.densities)
            start = _epoch(answer.performed_at)
            path = realised_path(series[answer.subject], start, answer.horizon_seconds // increment + 1, increment)
            try:
                found = volatility.volatility_term(answer.subject, answer.densities, path, start + answer.horizon_seconds, config)
            except volatility.VolatilityError as error:
                answer = dataclasses.replace(answer, status=PredictionStatus.FAILED, failed_reason=f"volatility term: {error}")
            else:
                term = found.vol_score if found else None
        checked.append(answer)
        terms.append(term)
    return checked, terms


def density_step_scores(answers: Iterable[DensityAnswer], prices: pl.DataFrame, config: CrpsConfig | None = None) -> pl.DataFrame:
    """One row per scored density: the realised increment it is judged against and its CRPS.

    `prices`: columns subject, ts_event (UTC datetime), price, one row per recorded price.
    Only valid answers (status PENDING) with densities are scored.
    """
    config = config or CrpsConfig()
    series = _price_series(prices)
    columns: dict[str, list] = {k: [] for k in ("model_id", "subject", "horizon_seconds", "performed_at", "step_seconds", "index")}
    starts, ends, widths, densities = [], [], [], []
    for answer in answers:
        if answer.status != PredictionStatus.PENDING or not answer.densities or answer.subject not in series:
            continue
        origin = _epoch(answer.performed_at)
        width = config.half_widths[answer.subject]
        for step, items in answer.densities.items():
            n = len(items)
            columns["model_id"] += [answer.model_id] * n
            columns["subject"] += [answer.subject] * n
            columns["horizon_seconds"] += [answer.horizon_seconds] * n
            columns["performed_at"] += [answer.performed_at] * n
            columns["step_seconds"] += [step] * n
            columns["index"] += list(range(n))
            offsets = origin + step * np.arange(n, dtype=np.int64)
            starts.append(offsets)
            ends.append(offsets + step)
            widths.append(np.full(n, crps_grid.half_width(width, step, config.base_step_seconds)))
            densities += items
    frame = pl.DataFrame(columns, schema={"model_id": pl.String, "subject": pl.String, "horizon_seconds": pl.Int64, "performed_at": schemas.UTC_TS, "step_seconds": pl.Int64, "index": pl.Int64})
    if not densities:
        return frame.with_columns(pl.lit(None, pl.Float64).alias("observed"), pl.lit(None, pl.Float64).alias("crps"))
    start, end, width = np.concatenate(starts), np.concatenate(ends), np.concatenate(widths)
    subjects = frame["subject"].to_numpy()
    observed = np.full(len(start), np.nan)
    for subject, (ts, price) in series.items():
        rows = np.flatnonzero(subjects == subject)
        if not len(rows) or not len(ts):
            continue
        a, b = _closest(ts, start[rows]), _closest(ts, end[rows])
        observed[rows] = np.where(a != b, price[b] - price[a], np.nan)
    scored = np.flatnonzero(~np.isnan(observed))
    values = np.full(len(start), np.nan)
    encoded = crps_grid.encode([densities[i] for i in scored])
    values[scored] = crps_grid.crps(encoded, observed[scored], width[scored], config.num_points)
    return frame.with_columns(pl.Series("observed", observed, nan_to_null=True), pl.Series("crps", values, nan_to_null=True))


def round_scores(answers: Iterable[DensityAnswer], prices: pl.DataFrame, config: CrpsConfig | None = None) -> pl.DataFrame:
    """One row per model per round (DENSITY_ROUND_SCORES): CRPS totals and normalised scores."""
    config = config or CrpsConfig()
    answers = list(answers)
    terms: list[float | None] = [None] * len(answers)
    if config.volatility is not None:
        answers, terms = volatility_terms(answers, _price_series(prices), config.volatility)
    steps = density_step_scores(answers, prices, config)
    totals = (
        steps.filter(pl.col("crps").is_not_null())
        .group_by(["model_id", *ROUND_KEY])
        .agg(pl.col("crps").sum().alias("crps_sum"), pl.len().cast(pl.Int64).alias("density_count"))
    )
    base = pl.DataFrame(
        {
            "model_id": [a.model_id for a in answers],
            "subject": [a.subject for a in answers],
            "profile": [a.profile for a in answers],
            "horizon_seconds": [a.horizon_seconds for a in answers],
            "performed_at": [a.performed_at for a in answers],
            "answer_status": [str(a.status) for a in answers],
            "failed_reason": [a.failed_reason for a in answers],
            "vol_crps": terms,
        },
        schema={"model_id": pl.String, "subject": pl.String, "profile": pl.String, "horizon_seconds": pl.Int64, "performed_at": schemas.UTC_TS, "answer_status": pl.String, "failed_reason": pl.String, "vol_crps": pl.Float64},
    )
    half = pl.col("subject").replace_strict({k: float(v) for k, v in config.half_widths.items()}, default=None, return_dtype=pl.Float64)
    frame = base.join(totals, on=["model_id", *ROUND_KEY], how="left").with_columns(
        (pl.col("crps_sum") / half + pl.col("vol_crps").fill_null(0.0)).alias("raw_crps"),
        pl.col("density_count").fill_null(0),
    )
    valid = (pl.col("answer_status") == PredictionStatus.PENDING) & pl.col("raw_crps").is_not_null()
    frame = frame.with_columns(
        pl.when(valid).then(pl.lit(PredictionStatus.SCORED.value)).when(pl.col("answer_status") == PredictionStatus.PENDING)
        .then(pl.lit(PredictionStatus.FAILED.value)).otherwise(pl.col("answer_status")).alias("status"),
        pl.when(valid | (pl.col("answer_status") != PredictionStatus.PENDING)).then(pl.col("failed_reason"))
        .otherwise(pl.lit("no density could be scored: no realised increments for its steps")).alias("failed_reason"),
        pl.when(valid).then(pl.col("raw_crps")).alias("raw_crps"),
        pl.when(valid).then(pl.col("vol_crps")).alias("vol_crps"),
    )
    frame = normalise(frame, "raw_crps")
    weights = pl.col("subject").replace_strict({k: float(v) for k, v in config.asset_weights.items()}, default=1.0, return_dtype=pl.Float64)
    return frame.with_columns(
        (pl.col("performed_at") + pl.duration(seconds=pl.col("horizon_seconds"))).alias("resolvable_at"),
        weights.alias("asset_weight"),
    ).select(list(schemas.DENSITY_ROUND_SCORES.names())).cast(dict(schemas.DENSITY_ROUND_SCORES)).sort(["performed_at", "subject", "horizon_seconds", "model_id"])


def normalise(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Add `crps` (the value, or the round's worst where it is null) and `score` (normalised per round).

    Worked example (one round, five valid answers 1, 2, 3, 4, 11 and one missing): best 1, 95th
    percentile 4 + 0.8 × (11 − 4) = 9.6, so the scores are 1, 0.8837…, 0.7674…, 0.6511…, 0 and the
    missing answer gets CRPS 11 and score 0.
    """
    over = pl.col(column)
    best = over.min().over(ROUND_KEY)
    worst = over.max().over(ROUND_KEY)
    cut = over.quantile(WORST_QUANTILE, interpolation="linear").over(ROUND_KEY)
    spread = cut - best
    score = (
        pl.when(over.is_null()).then(0.0)
        .when(spread <= 0).then(pl.when(over <= best).then(1.0).otherwise(0.0))
        .otherwise(((cut - over) / spread).clip(0.0, 1.0))
    )
    return frame.with_columns(pl.coalesce(over, worst).alias("crps"), score.alias("score"))


def weighted_overall(frame: pl.DataFrame, column: str = "score", weights: Mapping[str, float] | None = None) -> pl.DataFrame:
    """Per model: Σ_asset w · mean(column over the asset's rounds) / Σ w over the assets it has."""
    weights = {k: float(v) for k, v in (SYNTH_ASSET_WEIGHTS if weights is None else weights).items()}
    per_asset = frame.group_by(["model_id", "subject"]).agg(pl.col(column).mean().alias("mean"))
    w = pl.col("subject").replace_strict(weights, default=1.0, return_dtype=pl.Float64)
    return (
        per_asset.with_columns(w.alias("w"))
        .group_by("model_id")
        .agg(((pl.col("w") * pl.col("mean")).sum() / pl.col("w").sum()).alias(column))
        .sort("model_id")
    )
