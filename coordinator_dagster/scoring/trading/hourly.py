"""The trading pipeline's hour step: replay one hour from the state the hour before ended with,
save the new state as one row of exact text, and summarise each model's standing at the hour's
end as a snapshot row (the `snapshots` table's shape, so checkpoints' Merkle trees and the
report routes read trading snapshots like any others).

An hour's saved state is the replay state (books, positions, last prices) and every model's
running performance figures (running.py); it is derived data, recomputable from the
predictions and the feed, and never edited.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal

import polars as pl

from coordinator_dagster.feeds.granularity import granularity_seconds
from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.trading.config import TradingConfig
from coordinator_dagster.scoring.trading.replay import TradingReplay, amount, book_figures, replay
from coordinator_dagster.scoring.trading.running import Running
from coordinator_dagster.scoring.trading.state import BOOKS, POSITIONS, PRICES, TradingState, from_frames, to_frames

# The figures a trading snapshot's result_summary carries, in this order.
FIGURES = (
    "net_pnl",
    "unrealized_pnl",
    "realized_pnl",
    "total_fees",
    "total_carry_costs",
    "open_position_count",
    "exposure",
    "max_drawdown",
    "trade_count",
    "hit_rate",
    "sortino_ratio",
)


@dataclass
class HourState:
    replay: TradingState = field(default_factory=TradingState)
    running: dict[str, Running] = field(default_factory=dict)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def dump(state: HourState) -> str:
    frames = to_frames(state.replay)
    data = {
        name: [{k: (_iso(v) if isinstance(v, dt.datetime) else v) for k, v in row.items()} for row in frame.iter_rows(named=True)]
        for name, frame in frames.items()
    }
    data["as_of"] = _iso(state.replay.as_of)
    data["running"] = {model_id: running.to_json() for model_id, running in sorted(state.running.items())}
    return json.dumps(data, sort_keys=True)


def load(text: str, config: TradingConfig) -> HourState:
    data = json.loads(text)

    def frame(name: str, schema: pl.Schema) -> pl.DataFrame:
        rows = [{k: (dt.datetime.fromisoformat(v) if schema[k] == schemas.UTC_TS and v is not None else v) for k, v in row.items()} for row in data[name]]
        return pl.DataFrame(rows, schema=schema) if rows else schema.to_frame()

    replay_state = from_frames({"books": frame("books", BOOKS), "positions": frame("positions", POSITIONS), "prices": frame("prices", PRICES)}, config)
    replay_state.as_of = dt.datetime.fromisoformat(data["as_of"]) if data["as_of"] else None
    return HourState(replay_state, {m: Running.from_json(r) for m, r in data["running"].items()})


def prices_closing_in(feed_records: pl.DataFrame, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Feed records as prices at the time they became known: a candle's close at its close time
    (open time + granularity), a tick at its own time; those known in [start, end). A round at T
    thus trades at the close of the candle its model saw last, never at one closing after T."""
    if feed_records.is_empty():
        return feed_records.select("subject", "ts_event", "close", "price")
    steps = {g: granularity_seconds(g) for g in feed_records["granularity"].unique().drop_nulls().to_list()}
    step = pl.col("granularity").replace_strict(steps, default=0, return_dtype=pl.Int64) if steps else pl.lit(0)
    shift = pl.when(pl.col("kind") == "candle").then(step).otherwise(0)
    known = (pl.col("ts_event") + pl.duration(seconds=shift)).alias("ts_event")
    frame = feed_records.select("subject", known, "close", "price")
    return frame.filter((pl.col("ts_event") >= start) & (pl.col("ts_event") < end))


def replay_hour(predictions: pl.DataFrame, feed: pl.DataFrame, config: TradingConfig, start: HourState) -> tuple[TradingReplay, HourState]:
    """The hour's PnL and fills, and the state it ends with (`start` is not changed)."""
    result = replay(predictions, feed, config, start=start.replay)
    running = {m: Running(**vars(r)) for m, r in start.running.items()}
    closes = result.fills.filter(pl.col("closed") > 0)
    for (model_id,), rows in result.pnl.group_by("model_id", maintain_order=True):
        realized = closes.filter(model_id=model_id)["realized_pnl"].to_list()
        running.setdefault(model_id, Running()).fold(rows["net_pnl"].to_list(), realized)
    return result, HourState(result.state, running)


def figures(state: HourState, model_id: str) -> dict[str, Decimal | int | float | None]:
    """A model's standing at the state's time: its book's totals and running figures."""
    running = state.running.get(model_id, Running())
    return {
        **book_figures(state.replay.books[model_id]),
        "max_drawdown": amount(running.max_drawdown),
        "trade_count": running.closes,
        "hit_rate": running.hit_rate,
        "sortino_ratio": running.sortino_ratio,
    }


def snapshot_rows(state: HourState, predictions: pl.DataFrame, fills: pl.DataFrame, period_start: dt.datetime, scoring_version: str) -> pl.DataFrame:
    """One row per model with a book at the hour's end: `value` is its net PnL then; counts are
    the hour's orders (prediction_count), traded orders (scored_count) and the rest (failed).
    result_summary holds FIGURES as JSON numbers (the exact amounts are in trading_pnl)."""
    period_end = period_start + dt.timedelta(hours=1)
    hour = predictions.filter((pl.col("round_ts") >= period_start) & (pl.col("round_ts") < period_end))
    traded = fills.filter(pl.col("filled").is_not_null())
    rows = []
    for model_id in sorted(state.replay.books):
        values = figures(state, model_id)
        summary = {k: (float(v) if isinstance(v, Decimal) else v) for k, v in values.items()}
        orders = hour.filter(model_id=model_id).height
        filled = traded.filter(model_id=model_id).height
        rows.append(
            {
                "model_id": model_id,
                "period_start": period_start,
                "period_end": period_end,
                "prediction_count": orders,
                "scored_count": filled,
                "failed_count": orders - filled,
                "value": summary["net_pnl"],
                "result_summary": json.dumps(summary),
                "scoring_version": scoring_version,
            }
        )
    return pl.DataFrame(rows, schema=schemas.SNAPSHOTS) if rows else schemas.empty(schemas.SNAPSHOTS)
