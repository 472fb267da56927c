"""Leaderboards per group of rounds: overall, per horizon and per asset × horizon.

Density competitions (Synth) score each model once per round (one asset, one horizon, one round
time) with a normalised score (higher is better). Their leaderboard is not one ranking but
several: the overall one, one per horizon and one per asset × horizon, each with the contract's
windows (recent 24 h, steady 72 h, anchor 168 h by default). This module computes them from a
frame of round scores, as plain polars functions:

- input (`round scores`): one row per model per round, columns model_id, subject,
  horizon_seconds, performed_at (the round's time) and score; optional `resolvable_at` (default
  performed_at + horizon) and `asset_weight` (default 1).
- A round counts in a window once its score is known: its resolvable time lies in
  (as_of − window, as_of]. `as_of` is the newest resolvable time in the data (capped at `now`),
  so the same rounds always give the same leaderboard.
- Per horizon and per asset × horizon, a window's value is the mean score of the model's rounds in
  it. Overall, it is the asset-weighted mean of the per-asset means:
  Σ_asset w · mean(asset) / Σ_asset w over the assets the model has rounds of in the window.
- Each group is ranked by the ranking window (`ranking.rank`: dense, ties broken by more rounds,
  then model_id); a model without a value in the ranking window has no rank.

`published_entries` nests the long frame into CrunchDAO's published leaderboard shape: per model
`rank`, `score` {recent, steady, anchor}, `ranks_by_horizon` {"3600": {rank, score}} and
`ranks_by_param` {"BTC:3600": {rank, score}}; window names lose their `score_` prefix there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from coordinator_dagster.lake.schemas import UTC_TS, group_leaderboard_schema
from coordinator_dagster.scoring.ranking import rank

OVERALL, HORIZON, PARAM = "overall", "horizon", "param"
GROUP_KINDS = (OVERALL, HORIZON, PARAM)


def published_name(window: str) -> str:
    """`score_anchor` → `anchor`: the published leaderboard names its windows without prefix."""
    return window.removeprefix("score_")


def _prepared(rounds: pl.DataFrame) -> pl.DataFrame:
    frame = rounds
    if "resolvable_at" not in frame.columns:
        frame = frame.with_columns((pl.col("performed_at") + pl.duration(seconds=pl.col("horizon_seconds"))).alias("resolvable_at"))
    if "asset_weight" not in frame.columns:
        frame = frame.with_columns(pl.lit(1.0).alias("asset_weight"))
    return frame.with_columns(
        pl.col("score").cast(pl.Float64).fill_nan(None),
        pl.col("asset_weight").cast(pl.Float64).fill_null(1.0),
        pl.col("horizon_seconds").cast(pl.Int64),
    )


def _window_values(frame: pl.DataFrame, keys: list[str], windows: Mapping[str, int], as_of: dt.datetime, weighted: bool) -> pl.DataFrame:
    """Per `keys` (model_id first): each window's mean score, and the rounds in the longest one."""
    longest = max(windows.values())
    columns = []
    if not weighted:
        for name, hours in windows.items():
            inside = pl.col("resolvable_at") > as_of - dt.timedelta(hours=hours)
            columns.append(pl.col("score").filter(inside).mean().alias(name))
        inside_longest = pl.col("resolvable_at") > as_of - dt.timedelta(hours=longest)
        return frame.group_by(keys, maintain_order=True).agg(*columns, inside_longest.sum().cast(pl.Int64).alias("round_count"))
    # Overall: the mean per asset first, then the asset-weighted mean of those means.
    per_asset = []
    for name, hours in windows.items():
        inside = pl.col("resolvable_at") > as_of - dt.timedelta(hours=hours)
        per_asset.append(pl.col("score").filter(inside).mean().alias(name))
    inside_longest = pl.col("resolvable_at") > as_of - dt.timedelta(hours=longest)
    assets = frame.group_by([*keys, "subject"], maintain_order=True).agg(
        *per_asset, pl.col("asset_weight").first(), inside_longest.sum().cast(pl.Int64).alias("round_count")
    )
    weighted_means = []
    for name in windows:
        present = pl.col(name).is_not_null()
        weight = pl.col("asset_weight").filter(present)
        weighted_means.append(((pl.col(name) * pl.col("asset_weight")).filter(present).sum() / weight.sum()).alias(name))
    values = assets.group_by(keys, maintain_order=True).agg(*weighted_means, pl.col("round_count").sum())
    # A model without any asset in a window has no value there (0 / 0 would be NaN).
    return values.with_columns(pl.col(name).fill_nan(None) for name in windows)


def group_leaderboard(
    rounds: pl.DataFrame,
    windows: Mapping[str, int],
    ranking_window: str,
    direction: str = "desc",
    now: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
) -> pl.DataFrame:
    """The overall, per-horizon and per-asset × horizon leaderboards of `rounds` (see the module).

    `as_of` fixes the windows' end (a checkpoint uses its period end); by default it is the newest
    resolvable time in the data, capped at `now`.
    """
    if ranking_window not in windows:
        raise ValueError(f"ranking window {ranking_window!r} is not one of {list(windows)}")
    schema = group_leaderboard_schema(list(windows))
    frame = _prepared(rounds)
    if as_of is None and not frame.is_empty():
        as_of = frame["resolvable_at"].max()
        if now is not None and now < as_of:
            as_of = now
    if as_of is None:
        return pl.DataFrame(schema=schema)
    longest = max(windows.values())
    frame = frame.filter((pl.col("resolvable_at") > as_of - dt.timedelta(hours=longest)) & (pl.col("resolvable_at") <= as_of))
    if frame.is_empty():
        return pl.DataFrame(schema=schema)
    parts = [
        _window_values(frame, ["model_id"], windows, as_of, weighted=True).with_columns(
            pl.lit(OVERALL).alias("group_kind"), pl.lit("").alias("group_key"),
            pl.lit(None, pl.String).alias("subject"), pl.lit(None, pl.Int64).alias("horizon_seconds"),
        ),
        _window_values(frame, ["model_id", "horizon_seconds"], windows, as_of, weighted=False).with_columns(
            pl.lit(HORIZON).alias("group_kind"), pl.col("horizon_seconds").cast(pl.String).alias("group_key"),
            pl.lit(None, pl.String).alias("subject"),
        ),
        _window_values(frame, ["model_id", "subject", "horizon_seconds"], windows, as_of, weighted=False).with_columns(
            pl.lit(PARAM).alias("group_kind"),
            pl.concat_str(pl.col("subject"), pl.lit(":"), pl.col("horizon_seconds").cast(pl.String)).alias("group_key"),
        ),
    ]
    ranked = []
    for part in parts:
        part = part.with_columns(pl.col(ranking_window).alias("ranking_value"))
        for group in part.partition_by("group_key", maintain_order=True):
            ranked.append(rank(group, "ranking_value", direction, "round_count"))
    out = pl.concat([r.select(p for p in schema.names() if p in r.columns) for r in ranked], how="diagonal_relaxed")
    out = out.with_columns(pl.lit(ranking_window).alias("ranking_key"), pl.lit(as_of).cast(UTC_TS).alias("as_of"))
    kind_order = pl.col("group_kind").replace_strict({k: i for i, k in enumerate(GROUP_KINDS)}, return_dtype=pl.Int64)
    out = out.with_columns(kind_order.alias("_kind")).sort(
        ["_kind", "horizon_seconds", "subject", "rank", "model_id"], nulls_last=True
    ).drop("_kind")
    return out.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


def _score(row: Mapping[str, Any], windows: Sequence[str]) -> dict[str, float | None]:
    return {published_name(w): row.get(w) for w in windows}


def published_entries(board: pl.DataFrame, windows: Sequence[str], models: pl.DataFrame | None = None) -> list[dict[str, Any]]:
    """The long leaderboard as CrunchDAO publishes it: one entry per model, ordered by the overall
    rank (unranked last), with `ranks_by_horizon` and `ranks_by_param` keyed by group."""
    names: dict[str, dict[str, Any]] = {}
    if models is not None and not models.is_empty():
        for row in models.select("model_id", "name", "cruncher", "cruncher_index").iter_rows(named=True):
            names[row["model_id"]] = row
    entries: dict[str, dict[str, Any]] = {}
    for row in board.iter_rows(named=True):
        model = row["model_id"]
        entry = entries.setdefault(model, {"rank": None, "model_id": model, "score": dict.fromkeys(map(published_name, windows)), "ranks_by_horizon": {}, "ranks_by_param": {}})
        if row["group_kind"] == OVERALL:
            entry["rank"] = row["rank"]
            entry["score"] = _score(row, windows)
        else:
            target = entry["ranks_by_horizon"] if row["group_kind"] == HORIZON else entry["ranks_by_param"]
            target[row["group_key"]] = {"rank": row["rank"], "score": _score(row, windows)}
    for model, entry in entries.items():
        info = names.get(model, {})
        entry["model_name"] = info.get("name")
        entry["player_name"] = info.get("cruncher")
        entry["cruncher"] = info.get("cruncher")
        entry["cruncher_index"] = info.get("cruncher_index")
    return sorted(entries.values(), key=lambda e: (e["rank"] is None, e["rank"] or 0, e["model_id"]))


def markdown_group_tables(board: pl.DataFrame, windows: Sequence[str], kind: str, limit: int = 10) -> str:
    """One markdown table per group of `kind` (its top `limit`), for the Dagster UI."""
    part = board.filter(pl.col("group_kind") == kind)
    if part.is_empty():
        return "_no scored rounds yet_"
    blocks = []
    for group in part.partition_by("group_key", maintain_order=True):
        key = group["group_key"][0]
        title = {OVERALL: "overall", HORIZON: f"horizon {key} s", PARAM: f"{key.replace(':', ' × ')} s"}[kind]
        head = ["rank", "model", *(published_name(w) for w in windows), "rounds"]
        lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in group.filter(pl.col("rank").is_not_null()).head(limit).iter_rows(named=True):
            cells = [str(row["rank"]), row["model_id"].replace("|", "\\|")]
            cells += ["" if row[w] is None else f"{row[w]:.4f}" for w in windows]
            cells.append(str(row["round_count"]))
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def rounds_from_scores(scores: pl.DataFrame, horizons: Mapping[str, int]) -> pl.DataFrame:
    """Round scores from the pipeline's `scores` table, for contracts whose scores are not density
    rounds: one row per score, its scope's horizon (`horizons`: scope_key → seconds), the round
    time, and the score value (null for a failed score, which then counts in no mean)."""
    horizon = pl.col("scope_key").replace_strict({k: int(v) for k, v in horizons.items()}, default=None, return_dtype=pl.Int64)
    return scores.select(
        "model_id",
        "subject",
        horizon.alias("horizon_seconds"),
        pl.col("round_ts").alias("performed_at"),
        "resolvable_at",
        pl.when(pl.col("success")).then(pl.col("value")).alias("score"),
    ).filter(pl.col("horizon_seconds").is_not_null())
