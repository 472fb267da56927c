"""The dashboard's leaderboard columns, chart widgets and leaderboard figures for a trading
contract (`contract.trading`): net PnL, hit rate, max drawdown and Sortino as columns, and the
PnL charts (net PnL, its breakdown into realized and unrealized PnL, fees and carry, max
drawdown, Sortino, open positions) over `/reports/models/metrics`, whose rows carry every
trading snapshot figure.

Shapes as `report_schema`'s (the webapp's `LeaderboardColumn` and `Widget`); ids from 11, as
there, so the dashboard's own defaults never replace them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from api import sql
from api.dashboard import shapes
from api.dashboard.report_schema import SCHEMA_VERSION, _bar, _line, label
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.scoring.trading.hourly import FIGURES

# (property, format, tooltip) of the columns after the model's; net PnL ranks the leaderboard.
_COLUMNS = (
    ("net_pnl", "decimal-4", "Net PnL now: unrealized + realized − fees − carry (ranks the leaderboard)"),
    ("hit_rate", "percentage", "Closing fills with a positive realized PnL, over all closing fills"),
    ("max_drawdown", "decimal-4", "Largest fall of net PnL from its running peak"),
    ("sortino_ratio", "decimal-2", "Mean change of net PnL over its downside deviation"),
)
_BREAKDOWN = (("realized_pnl", "Realized PnL"), ("unrealized_pnl", "Unrealized PnL"), ("total_fees", "Fees"), ("total_carry_costs", "Carry"))


def trading_leaderboard_columns(contract: CrunchContract) -> list[dict[str, Any]]:
    columns: list[dict[str, Any]] = [
        {"id": 1, "type": "USERNAME", "property": "username", "format": None, "displayName": "Cruncher",
         "tooltip": None, "nativeConfiguration": None, "order": -10},
        {"id": 2, "type": "PROJECT", "property": "model_id", "format": None, "displayName": "Model",
         "tooltip": None, "nativeConfiguration": {"type": "model", "statusProperty": "status"}, "order": 0},
    ]
    for i, (name, fmt, tooltip) in enumerate(_COLUMNS):
        columns.append({"id": 3 + i, "type": "VALUE", "property": name, "format": fmt, "displayName": label(name),
                        "tooltip": tooltip, "nativeConfiguration": None, "order": (i + 1) * 10})
    for j, (name, hours) in enumerate(contract.aggregation.windows.items()):
        columns.append({"id": 3 + len(_COLUMNS) + j, "type": "VALUE", "property": name, "format": "decimal-4", "displayName": label(name),
                        "tooltip": f"Net PnL made over the last {hours} hours", "nativeConfiguration": None, "order": 100 + j * 10})
    return columns


def trading_metrics_widgets(contract: CrunchContract) -> list[dict[str, Any]]:
    url = "/reports/models/metrics"
    return [
        _line(11, "P&L Over Time", 10, url, [{"name": "net_pnl", "label": "Net PnL"}],
              tooltip="Per model, net PnL at the end of every hour, fees and carry included"),
        _line(12, "P&L Breakdown", 20, url, [{"name": n, "label": t} for n, t in _BREAKDOWN],
              tooltip="Per model and hour: realized and unrealized PnL, fees and carry paid so far"),
        _line(13, "Max Drawdown", 30, url, [{"name": "max_drawdown", "label": "Max Drawdown"}],
              tooltip="Largest fall of net PnL from its running peak so far"),
        _line(14, "Sortino Ratio", 35, url, [{"name": "sortino_ratio", "label": "Sortino"}], format="decimal-2",
              tooltip="Mean change of net PnL over its downside deviation, so far"),
        _line(15, "Open Positions", 40, url, [{"name": "open_position_count", "label": "Positions"}], format="decimal-0",
              tooltip="Open positions per model at the end of every hour"),
        _bar(16, "Reward History", 50, "/reports/checkpoints/rewards", "period_end",
             [{"name": "reward_pct", "label": "Reward %"}], format="decimal-2",
             tooltip="Each model's share of each checkpoint's emission, in percent", groupByProperty="model_name"),
    ]


def trading_report_schema(contract: CrunchContract) -> dict[str, Any]:
    """`/reports/schema` for a trading contract (`report_schema.report_schema` for the others)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "leaderboard_columns": trading_leaderboard_columns(contract),
        "metrics_widgets": trading_metrics_widgets(contract),
    }


def trading_figures(db: duckdb.DuckDBPyConnection, as_of: dt.datetime) -> dict[str, dict[str, float | None]]:
    """Per model, the figures of its newest snapshot ending by `as_of` (hourly.FIGURES): what a
    trading leaderboard row carries beside its rank and windows."""
    found = sql.rows(
        db,
        "SELECT model_id, arg_max(result_summary, period_end) AS result_summary FROM snapshots WHERE period_end <= ? GROUP BY model_id",
        [as_of],
    )
    figures = {}
    for row in found:
        values = shapes.numeric_fields(row["result_summary"])
        figures[row["model_id"]] = {name: values.get(name) for name in FIGURES}
    return figures
