"""Materialization metadata shared by the assets: row counts and markdown previews for the UI."""

import datetime as dt
from typing import Any

import dagster as dg
import polars as pl

from coordinator_dagster.checks import CheckOutcome


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
