"""Per-model performance of a trading replay: the figures a trading snapshot carries (net,
unrealized and realized PnL, fees, carry, open positions, max drawdown, hit rate, Sortino) and
the ranking by net PnL that the leaderboard and checkpoints use.

- max_drawdown: the largest fall of net PnL from its running peak over the model's PnL rows.
- hit_rate: closing fills (partial closes count one each, as the reference's trades) with
  realized PnL > 0, over all closing fills; null before the first close.
- sortino_ratio: over the changes of net PnL between consecutive rows, mean change / downside
  deviation, the downside deviation being √(Σ min(change, 0)² / number of changes) (Sortino and
  Price's definition; the reference divides by the number of negative changes only). Null with
  fewer than two rows or no negative change, where the ratio says nothing.

Amounts are exact Decimals (the replay's context, then 12 places half to even); the ratios are
Float64, since nothing is paid on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import polars as pl

from coordinator_dagster.scoring.trading.config import SIMULATION_CONTEXT as C
from coordinator_dagster.scoring.trading.replay import AMOUNT, TradingReplay, amount

# One row per model: its last PnL row and its performance figures, best net PnL first.
SUMMARY = pl.Schema(
    {
        "rank": pl.Int64,
        "model_id": pl.String,
        "at": pl.Datetime("us", "UTC"),
        "net_pnl": AMOUNT,
        "unrealized_pnl": AMOUNT,
        "realized_pnl": AMOUNT,
        "total_fees": AMOUNT,
        "total_carry_costs": AMOUNT,
        "open_position_count": pl.Int64,
        "max_drawdown": AMOUNT,
        "trade_count": pl.Int64,
        "hit_rate": pl.Float64,
        "sortino_ratio": pl.Float64,
    }
)


def max_drawdown(series: Sequence[Decimal]) -> Decimal:
    peak, worst = None, Decimal(0)
    for value in series:
        peak = value if peak is None or value > peak else peak
        worst = max(worst, C.subtract(peak, value))
    return worst


def sortino_ratio(series: Sequence[Decimal]) -> float | None:
    changes = [C.subtract(b, a) for a, b in zip(series, series[1:])]
    downside = [change for change in changes if change < 0]
    if not downside:
        return None
    n = Decimal(len(changes))
    mean = C.divide(_total(changes), n)
    deviation = C.sqrt(C.divide(_total([C.multiply(d, d) for d in downside]), n))
    return float(C.divide(mean, deviation))


def _total(values: Sequence[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = C.add(total, value)
    return total


def hit_rate(realized: Sequence[Decimal]) -> float | None:
    if not realized:
        return None
    return sum(1 for pnl in realized if pnl > 0) / len(realized)


def summary(result: TradingReplay) -> pl.DataFrame:
    """One row per model, ranked by net PnL (dense, higher first; ties listed by more closing
    fills, then model_id): the snapshot figures and the leaderboard's order."""
    closes = result.fills.filter(pl.col("closed") > 0)
    rows = []
    for (model_id,), pnl in result.pnl.sort("at").group_by("model_id", maintain_order=True):
        series = pnl["net_pnl"].to_list()
        realized = closes.filter(model_id=model_id)["realized_pnl"].to_list()
        last = pnl.row(pnl.height - 1, named=True)
        rows.append(
            {name: last[name] for name in ("model_id", "at", "net_pnl", "unrealized_pnl", "realized_pnl", "total_fees", "total_carry_costs", "open_position_count")}
            | {
                "max_drawdown": amount(max_drawdown(series)),
                "trade_count": len(realized),
                "hit_rate": hit_rate(realized),
                "sortino_ratio": sortino_ratio(series),
            }
        )
    rank_by(rows, "net_pnl")
    return pl.DataFrame(rows, schema=SUMMARY) if rows else SUMMARY.to_frame()


def rank_by(rows: list[dict], key: str) -> list[dict]:
    """Sort `rows` best first on the exact Decimal `key` (higher first; ties listed by more
    closing fills `trade_count`, then model_id) and give each a dense `rank`, in place."""
    # Ranked on the exact Decimal, not a float cast, so amounts that differ rank apart.
    # Stable sorts, last key first; no negation, which would round in the ambient context.
    rows.sort(key=lambda row: row["model_id"])
    rows.sort(key=lambda row: row["trade_count"], reverse=True)
    rows.sort(key=lambda row: row[key], reverse=True)
    rank, previous = 0, None
    for row in rows:
        if row[key] != previous:
            rank, previous = rank + 1, row[key]
        row["rank"] = rank
    return rows
