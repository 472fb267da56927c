"""Row shaping for the dashboard's routes: plain functions over polars frames and dicts.

What belongs here: how a lake row becomes the flat row the dashboard reads (each window and
metric a top-level number, `score_ranking`, `status`), the chart's timestamp form, scores rolled
into trailing windows per hour, the prizes and the submission tool's percentages. No SQL and no
FastAPI: the routes (`api.routes.dashboard_*`) read the lake and call these.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import polars as pl

from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.scoring import payouts

UTC = dt.timezone.utc


def chart_time(value: dt.datetime | None) -> str | None:
    """UTC without an offset, e.g. "2026-11-20T01:00:00": the dashboard's line chart appends "Z"
    to every x value before parsing it, so "…Z" or "+00:00" would be an invalid date there."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


def horizon_label(seconds: int) -> str:
    """A scope's horizon as the dashboard's filters show it: 60 → "1m", 3600 → "1h", 45 → "45s"."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def finite(value: Any) -> float | None:
    """A number as JSON can hold it: NaN, infinities and non-numbers become None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def model_status(active: bool | None) -> str:
    """The leaderboard's `status`: the dashboard lights a model's ring when it reads "active"."""
    return "active" if active else "inactive"


def percent(frac64: int) -> float:
    """A frac64 share (1,000,000,000 = 100 %) in percent, exact to the share's last digit:
    250,000,000 → 25.0, 333,333,333 → 33.3333333."""
    return float(Decimal(frac64) * 100 / FRAC64_MULTIPLIER)


def diversity_score(correlation: float | None) -> float | None:
    """0 for a model moving exactly with (or against) the others, 1 for an uncorrelated one."""
    correlation = finite(correlation)
    return None if correlation is None else round(max(0.0, 1.0 - abs(correlation)), 4)


def numeric_fields(summary: str | Mapping[str, Any] | None) -> dict[str, float | None]:
    """The numeric fields of a snapshot's `result_summary` (JSON text or dict); NaN → None."""
    data = json.loads(summary) if isinstance(summary, str) else (summary or {})
    return {k: finite(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def metric_means(snapshots: pl.DataFrame, metrics: Iterable[str]) -> pl.DataFrame:
    """Per model, the mean of each metric over its snapshots (from `result_summary`), NaN-free."""
    names = list(metrics)
    if snapshots.is_empty():
        return pl.DataFrame(schema={"model_id": pl.String, **{m: pl.Float64 for m in names}})
    values = [
        pl.col("result_summary").str.json_path_match(f"$.{m}").cast(pl.Float64, strict=False).alias(m) for m in names
    ]
    frame = snapshots.select("model_id", *values).with_columns(
        [pl.when(pl.col(m).is_finite()).then(pl.col(m)).alias(m) for m in names]
    )
    return frame.group_by("model_id", maintain_order=True).agg([pl.col(m).mean() for m in names])


def ranking(key: str, value: float | None, direction: str) -> dict[str, Any]:
    return {"key": key, "value": finite(value), "direction": direction}


def leaderboard_row(
    entry: Mapping[str, Any],
    windows: Iterable[str],
    metrics: Mapping[str, float | None],
    model: Mapping[str, Any],
    direction: str,
) -> dict[str, Any]:
    """One leaderboard row as the project documents it plus the dashboard's flat fields: every
    window and metric at the top level (and together in `score_metrics`), `score_ranking`,
    `cruncher_name`, `status` and `created_at`."""
    window_values = {name: finite(entry.get(name)) for name in windows}
    score_metrics = {**window_values, **{name: finite(v) for name, v in metrics.items()}}
    return {
        **score_metrics,
        "rank": entry["rank"],
        "is_ensemble": bool(entry.get("is_ensemble")),
        "model_id": entry["model_id"],
        "model_name": entry.get("model_name") or model.get("name"),
        "cruncher": entry.get("cruncher") or model.get("cruncher"),
        "cruncher_name": entry.get("cruncher") or model.get("cruncher"),
        # The dashboard's default USERNAME column reads `username`.
        "username": entry.get("cruncher") or model.get("cruncher"),
        "ranking_key": entry["ranking_key"],
        "ranking_value": finite(entry.get("ranking_value")),
        "windows": window_values,
        "prediction_count": entry.get("prediction_count"),
        "as_of": entry.get("as_of"),
        "created_at": entry.get("as_of"),
        "status": model_status(model.get("active", True) if model else not entry.get("is_ensemble")),
        "score_metrics": score_metrics,
        "score_ranking": ranking(entry["ranking_key"], entry.get("ranking_value"), direction),
    }


def rolling_windows(scores: pl.DataFrame, windows: Mapping[str, int], by: list[str]) -> pl.DataFrame:
    """Per group of `by` and per hour with scores, the mean successful score of each trailing
    window ending with that hour (a window of 24 h at 10:00 covers the rounds after 10:00 the
    day before, up to 11:00). `scores` has `by`, `round_ts`, `value`, `success`; the answer has
    `by`, `hour` (the end of the hour, when its rows are known) and one column per window."""
    ok = scores.filter(pl.col("success") & pl.col("value").is_finite())
    if ok.is_empty():
        return pl.DataFrame(schema={**{c: scores.schema[c] for c in by}, "hour": pl.Datetime("us", "UTC"), **{w: pl.Float64 for w in windows}})
    hourly = (
        ok.with_columns((pl.col("round_ts").dt.truncate("1h") + pl.duration(hours=1)).alias("hour"))
        .group_by([*by, "hour"])
        .agg(pl.col("value").sum().alias("total"), pl.len().alias("count"))
        .sort([*by, "hour"])
    )
    columns = []
    for name, hours in windows.items():
        rolled = hourly.rolling("hour", period=f"{hours}h", group_by=by).agg(
            (pl.col("total").sum() / pl.col("count").sum()).alias(name)
        )
        columns.append(rolled)
    out = columns[0]
    for extra in columns[1:]:
        out = out.join(extra, on=[*by, "hour"], how="left")
    return out.sort([*by, "hour"])


def prize_split(total: int, shares: list[int]) -> list[int]:
    """`total` tokens split by frac64 `shares` in whole tokens, by the largest remainder method of
    `payouts.prizes_of_shares`; shares summing to less than 1,000,000,000 (a share the rule
    retains) leave the retained part's tokens out.

    total 100, shares [333,333,334, 333,333,333, 333,333,333] → exact 33.3333334, 33.3333333,
    33.3333333 → floors 33, 33, 33 (99) → the one left goes to the first: [34, 33, 33]."""
    if total < 0:
        raise ValueError("total must not be negative")
    retained = FRAC64_MULTIPLIER - sum(shares)
    if retained < 0:
        raise ValueError(f"shares add up to {sum(shares)}, more than {FRAC64_MULTIPLIER}")
    return payouts.prizes_of_shares([*shares, retained], total)[: len(shares)]


def cruncher_keys(entries: list[Mapping[str, Any]]) -> dict[int, str]:
    """cruncher_index → the model id that earned the reward, from a checkpoint's ranked entries."""
    return {int(e["cruncher_index"]): str(e["model_id"]) for e in entries if e.get("cruncher_index") is not None}


def cli_format(emission: Mapping[str, Any], entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The emission as the reference's on-chain submission tool reads it: percentages (0–100)
    keyed by the model id of each cruncher (the operator maps them to wallets), by provider
    address for the providers."""
    keys = cruncher_keys(entries)
    return {
        "crunch": emission.get("crunch", ""),
        "crunchEmission": {
            keys.get(r["cruncher_index"], str(r["cruncher_index"])): percent(r["reward_pct"])
            for r in emission.get("cruncher_rewards", [])
        },
        "computeProvider": {r["provider"]: percent(r["reward_pct"]) for r in emission.get("compute_provider_rewards", [])},
        "dataProvider": {r["provider"]: percent(r["reward_pct"]) for r in emission.get("data_provider_rewards", [])},
    }


def prizes(checkpoint_id: str, period_end: dt.datetime, emission: Mapping[str, Any], entries: list[Mapping[str, Any]], total: int) -> list[dict[str, Any]]:
    """The checkpoint's cruncher rewards as the platform's checkpoint form takes them:
    [{prizeId, timestamp (period end, Unix seconds), model, prize (whole tokens of `total`)}]."""
    keys = cruncher_keys(entries)
    rewards = emission.get("cruncher_rewards", [])
    amounts = prize_split(total, [r["reward_pct"] for r in rewards])
    timestamp = int(period_end.timestamp())
    out = []
    for reward, amount in zip(rewards, amounts, strict=True):
        model = keys.get(reward["cruncher_index"], str(reward["cruncher_index"]))
        out.append({"prizeId": f"{checkpoint_id}-{model}", "timestamp": timestamp, "model": model, "prize": amount})
    return out


def checkpoint_ranking(entries: list[Mapping[str, Any]], names: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """`meta.ranking` of a checkpoint: each ranked model with its id, name and rank."""
    return [
        {
            "model_id": e.get("model_id"),
            "model_name": e.get("name") or names.get(str(e.get("model_id"))),
            "rank": e.get("rank"),
            "cruncher_index": e.get("cruncher_index"),
            "prediction_count": e.get("prediction_count"),
        }
        for e in entries
    ]
