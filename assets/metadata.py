"""Materialization metadata shared by the assets: row counts, markdown previews, summary tables
and small charts for the Dagster UI.

The functions that build the values are plain (frames in, frames or text out) and tested
directly; the assets only call them. Nothing here changes what an asset computes or writes.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl

from assets import plots
from coordinator_dagster.checks import CheckOutcome
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER

# A chart has at most this many points per series: a week of minute candles is 10,080 points,
# far more than 500 px can show, and the metadata is stored with every materialization.
PLOT_MAX_POINTS = 240
# The leaderboard's preview and chart show the top of the ranking.
LEADERBOARD_TOP = 10


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list):
        return f"[{len(value)} items]"
    text = str(value)
    return (text[:60] + "…") if len(text) > 60 else text.replace("|", "\\|")


def markdown_table(frame: pl.DataFrame, limit: int = 10) -> str:
    if frame.is_empty():
        return "_no rows_"
    head = frame.head(limit)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in head.iter_rows()]
    if frame.height > limit:
        lines.append(f"\n_{frame.height - limit} more rows_")
    return "\n".join(lines)


def table_metadata(frame: pl.DataFrame, partitions: int = 1, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "dagster/row_count": frame.height,
        "partitions_written": partitions,
        "preview": dg.MetadataValue.md(markdown_table(frame)),
    }
    metadata.update(extra)
    return metadata


def counts_by(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if frame.is_empty():
        return {}
    return {str(k): int(v) for k, v in frame.group_by(column).len().sort(column).iter_rows()}


def check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        description=outcome.description,
        metadata={k: v if isinstance(v, int | float | str) else str(v) for k, v in outcome.metadata.items()},
    )


def score_summary(scores: pl.DataFrame) -> pl.DataFrame:
    """Per model: scores written, failed scores, and the mean, min and max of the successful ones."""
    columns = ["model_id", "count", "failed", "mean", "min", "max"]
    if scores.is_empty():
        return pl.DataFrame(schema={c: pl.String if c == "model_id" else pl.Float64 for c in columns})
    ok = pl.col("value").filter(pl.col("success") & pl.col("value").is_not_null() & pl.col("value").is_not_nan())
    return (
        scores.group_by("model_id")
        .agg(
            pl.len().alias("count"),
            (~pl.col("success")).sum().alias("failed"),
            ok.mean().alias("mean"),
            ok.min().alias("min"),
            ok.max().alias("max"),
        )
        .sort("model_id")
        .select(columns)
    )


def price_series(records: pl.DataFrame) -> dict[str, list[tuple[float, float]]]:
    """Per subject, (epoch seconds, close) in time order: the feed's price line."""
    if records.is_empty():
        return {}
    ordered = records.filter(pl.col("close").is_not_null()).sort("subject", "ts_event")
    out: dict[str, list[tuple[float, float]]] = {}
    for subject, ts, close in ordered.select("subject", pl.col("ts_event").dt.epoch("s"), "close").iter_rows():
        out.setdefault(subject, []).append((float(ts), float(close)))
    return out


def price_charts(records: pl.DataFrame, max_points: int = PLOT_MAX_POINTS) -> str:
    """Markdown with one price chart per subject (their scales differ: BTC and ETH in one chart
    would flatten ETH into a line)."""
    series = price_series(records)
    if not series:
        return "_no records_"
    first, last = records["ts_event"].min(), records["ts_event"].max()
    labels = (f"{first:%Y-%m-%d %H:%M}", f"{last:%Y-%m-%d %H:%M} UTC")
    images = []
    for subject, points in series.items():
        svg = plots.line_chart({subject: plots.downsample(points, max_points)}, title=f"{subject} close", x_labels=labels)
        images.append(plots.markdown_image(svg, f"{subject} close price"))
    return "\n\n".join(images)


def leaderboard_top(board: pl.DataFrame, window_names: Sequence[str], limit: int = LEADERBOARD_TOP) -> pl.DataFrame:
    """The ranked models (ensembles, unranked, left out) best first, with their window scores."""
    if board.is_empty():
        return board
    columns = ["rank", "model_id", "model_name", "cruncher", *window_names, "prediction_count"]
    return board.filter(pl.col("rank").is_not_null()).sort("rank").head(limit).select([c for c in columns if c in board.columns])


def window_scores_chart(top: pl.DataFrame, window_names: Sequence[str]) -> str:
    groups: dict[str, Mapping[str, float | None]] = {
        row["model_id"]: {name: row.get(name) for name in window_names} for row in top.iter_rows(named=True)
    }
    svg = plots.bar_chart(groups, title="window scores of the top models")
    return plots.markdown_image(svg, "window scores per model")


def leaderboard_metadata(board: pl.DataFrame, window_names: Sequence[str]) -> dict[str, Any]:
    top = leaderboard_top(board, window_names)
    ranked = board.filter(pl.col("rank").is_not_null()) if board.height else board
    return {
        "dagster/row_count": board.height,
        "ranked_models": ranked.height,
        "as_of": str(board["as_of"][0]) if board.height else "no snapshots yet",
        "leader": top["model_id"][0] if top.height else "none",
        "preview": dg.MetadataValue.md(markdown_table(top, limit=LEADERBOARD_TOP)),
        "window_scores": dg.MetadataValue.md(window_scores_chart(top, window_names) if top.height else "_no ranked models_"),
    }


def emission_shares(entries: Sequence[Mapping[str, Any]], emission: Mapping[str, Any]) -> pl.DataFrame:
    """One row per cruncher reward of the emission, with its models, its frac64 share and that
    share in percent (FRAC64_MULTIPLIER = 100 %); best-ranked cruncher first."""
    models: dict[int, list[Mapping[str, Any]]] = {}
    for entry in entries:
        models.setdefault(int(entry["cruncher_index"]), []).append(entry)
    rows = []
    for reward in emission.get("cruncher_rewards", []):
        index = int(reward["cruncher_index"])
        mine = sorted(models.get(index, []), key=lambda e: (e["rank"] is None, e["rank"] or 0))  # unranked last
        rows.append(
            {
                "rank": mine[0]["rank"] if mine else None,
                "cruncher": next((e.get("cruncher") for e in mine if e.get("cruncher")), None),
                "cruncher_index": index,
                "models": ", ".join(str(e["model_id"]) for e in mine),
                "reward_pct": int(reward["reward_pct"]),
                "share_percent": 100 * int(reward["reward_pct"]) / FRAC64_MULTIPLIER,
            }
        )
    schema = {"rank": pl.Int64, "cruncher": pl.String, "cruncher_index": pl.Int64, "models": pl.String, "reward_pct": pl.Int64, "share_percent": pl.Float64}
    return pl.DataFrame(rows, schema=schema).sort("rank", nulls_last=True)


def emission_markdown(shares: pl.DataFrame) -> str:
    """The reward table with percentages to 4 decimals and a total row (it must read 100 %)."""
    if shares.is_empty():
        return "_no scored models in this period_"
    shown = shares.with_columns(pl.col("share_percent").map_elements(lambda v: f"{v:.4f} %", return_dtype=pl.String))
    total = f"| **total** | | | | {shares['reward_pct'].sum()} | {shares['share_percent'].sum():.4f} % |"
    return markdown_table(shown, limit=shown.height) + "\n" + total


def snapshot_summary(snapshots: pl.DataFrame) -> pl.DataFrame:
    """Per model over the written hours: predictions, scored, failed, and the mean hourly value."""
    if snapshots.is_empty():
        return snapshots.select("model_id")
    return (
        snapshots.group_by("model_id")
        .agg(
            pl.len().alias("hours"),
            pl.col("prediction_count").sum(),
            pl.col("scored_count").sum(),
            pl.col("failed_count").sum(),
            pl.col("value").filter(pl.col("value").is_not_nan()).mean().alias("mean_value"),
        )
        .sort("model_id")
    )
