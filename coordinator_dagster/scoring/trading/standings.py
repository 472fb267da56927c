"""Trading standings: the leaderboard and a checkpoint's ranked entries, both by net PnL.

- Leaderboard: each model's net PnL at the newest replayed hour (ranking_value), and per
  leaderboard window the net PnL it made over that window (net now − net at the window's start;
  0 before its first order). Same frame as every leaderboard (schemas.leaderboard_schema).
- Checkpoint: each model's net PnL made over the period (net at the period's end − net at its
  start), the entries shaped as `ranking.checkpoint_entries`'s so the contract's emission rule,
  the payout table and the checks take them unchanged.

Both rank on the exact Decimal amounts of the saved hour states (performance.rank_by: dense,
higher first, ties by more closing fills then model_id), never on a float.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.trading.config import SIMULATION_CONTEXT as C
from coordinator_dagster.scoring.trading.hourly import HourState, figures
from coordinator_dagster.scoring.trading.performance import rank_by

RANKING_KEY = "net_pnl"
ZERO = Decimal(0)


def net_pnl(state: HourState | None) -> dict[str, Decimal]:
    """Every model's net PnL in `state` (none before the first replayed hour)."""
    if state is None:
        return {}
    return {model_id: figures(state, model_id)["net_pnl"] for model_id in state.replay.books}


def _names(models: pl.DataFrame) -> dict[str, dict[str, Any]]:
    if models.is_empty():
        return {}
    return {row["model_id"]: row for row in models.select("model_id", "name", "cruncher", "cruncher_index").iter_rows(named=True)}


def leaderboard(now: HourState, window_starts: Mapping[str, HourState | None], models: pl.DataFrame, as_of: dt.datetime) -> pl.DataFrame:
    """`now`: the newest hour's state; `window_starts`: per window name, the state of the hour
    before the window began (None if nothing had been replayed yet)."""
    schema = schemas.leaderboard_schema(window_starts)
    names = _names(models)
    before = {name: net_pnl(state) for name, state in window_starts.items()}
    rows = []
    for model_id in now.replay.books:
        values = figures(now, model_id)
        row = {"model_id": model_id, "net_pnl": values["net_pnl"], "trade_count": values["trade_count"]}
        row |= {name: C.subtract(values["net_pnl"], start.get(model_id, ZERO)) for name, start in before.items()}
        rows.append(row)
    rank_by(rows, RANKING_KEY)
    out = [
        {
            "rank": row["rank"],
            "model_id": row["model_id"],
            "model_name": names.get(row["model_id"], {}).get("name"),
            "cruncher": names.get(row["model_id"], {}).get("cruncher"),
            "ranking_key": RANKING_KEY,
            "ranking_value": float(row["net_pnl"]),
            "is_ensemble": False,
            **{name: float(row[name]) for name in window_starts},
            "prediction_count": row["trade_count"],
            "as_of": as_of,
        }
        for row in rows
    ]
    return pl.DataFrame(out, schema=schema) if out else schemas.empty(schema)


def checkpoint_entries(start: HourState | None, end: HourState | None, models: pl.DataFrame) -> list[dict[str, Any]]:
    """Ranked entries of one period: `start` is the state before the period's first hour, `end`
    the state after its last (None: nothing replayed). `value` and `ranking_value` are the net PnL
    made in the period as floats; `period_net_pnl` the exact amount as text."""
    if end is None:
        return []
    names = _names(models)
    opening = net_pnl(start)
    rows = []
    for model_id in end.replay.books:
        values = figures(end, model_id)
        made = C.subtract(values["net_pnl"], opening.get(model_id, ZERO))
        rows.append({"model_id": model_id, "period_net_pnl": made, "trade_count": values["trade_count"], "figures": values})
    rank_by(rows, "period_net_pnl")
    entries = []
    for row in rows:
        known = names.get(row["model_id"], {})
        made = row["period_net_pnl"]
        entries.append(
            {
                "rank": row["rank"],
                "model_id": row["model_id"],
                "value": float(made),
                "ranking_value": float(made),
                "period_net_pnl": str(made),
                **{k: (float(v) if isinstance(v, Decimal) else v) for k, v in row["figures"].items()},
                "name": known.get("name"),
                "cruncher": known.get("cruncher"),
                "cruncher_index": known.get("cruncher_index"),
                "ranking_key": RANKING_KEY,
            }
        )
    return json.loads(json.dumps(entries, default=str))
