"""The replay: predictions and a price feed in, PnL frames out, the same bytes every time.

The portfolios are not a stored, mutable table: they are recomputed from the recorded
predictions and the feed, so a replay of the same rows gives the same PnL to the last digit.

Order of events (a total order, so the input's row order never matters):
1. Feed records by (ts_event, subject, price); each marks the positions on that subject (a
   record's `close`, or `price` when close is null; a NaN or a price ≤ 0 is skipped). Two
   records of one subject at one time: the later in this order wins.
2. At the same time, orders after marks (an order trades at the price known at its time), by
   (model_id, prediction_id). An order is a prediction whose status is not FAILED or ABSENT,
   timed at its round_ts, read by the signal mode, traded at the last price of its subject's
   feed subject. No price yet, or an unreadable answer: a fills row with the reason, no trade.
3. After all events of one time, every model that has placed an order so far accrues carry up
   to that time and gets one PnL row.

A replay can cover one window (an hour, say) and start from the state the window before ended
with (state.py): window by window gives the same bytes as one replay over the whole span.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from coordinator_dagster.scoring.trading.book import Book, Fill
from coordinator_dagster.scoring.trading.config import AMOUNT_QUANTUM, AMOUNT_SCALE, SIMULATION_CONTEXT, TradingConfig, exact
from coordinator_dagster.scoring.trading.signals import SignalError, order_size
from coordinator_dagster.scoring.trading.state import TradingState
from coordinator_dagster.statuses import PredictionStatus

UTC_TS = pl.Datetime("us", "UTC")
AMOUNT = pl.Decimal(38, AMOUNT_SCALE)
NO_PRICE = "no positive price for the subject yet"
NOT_ORDERS = (PredictionStatus.FAILED.value, PredictionStatus.ABSENT.value)

# One row per model per event time, from the model's first order on.
PNL = pl.Schema(
    {
        "model_id": pl.String,
        "at": UTC_TS,
        "net_pnl": AMOUNT,
        "unrealized_pnl": AMOUNT,
        "realized_pnl": AMOUNT,
        "total_fees": AMOUNT,
        "total_carry_costs": AMOUNT,
        "open_position_count": pl.Int64,
        "exposure": AMOUNT,
    }
)

# One row per order (a prediction that is not FAILED or ABSENT).
FILLS = pl.Schema(
    {
        "prediction_id": pl.String,
        "model_id": pl.String,
        "subject": pl.String,
        "at": UTC_TS,
        "price": AMOUNT,
        "requested": AMOUNT,
        "filled": AMOUNT,
        "closed": AMOUNT,
        "fee": AMOUNT,
        "realized_pnl": AMOUNT,
        "reason": pl.String,  # a limit that cut the order, or why it was not traded
    }
)


@dataclass(frozen=True)
class TradingReplay:
    pnl: pl.DataFrame
    fills: pl.DataFrame
    state: TradingState  # where the next window starts from


def amount(value: Decimal | None) -> Decimal | None:
    """A frame amount: 12 decimal places, half to even."""
    if value is None:
        return None
    # Adding zero drops a negative zero's sign, so −0 and 0 are written alike.
    return SIMULATION_CONTEXT.add(value.quantize(AMOUNT_QUANTUM, context=SIMULATION_CONTEXT), Decimal(0))


def _marks(feed: pl.DataFrame) -> list[tuple[dt.datetime, str, Decimal]]:
    price = pl.coalesce(pl.col("close"), pl.col("price")) if "price" in feed.columns else pl.col("close")
    # A NaN or non-positive price marks nothing: no position could be valued or opened at it.
    rows = (
        feed.select("ts_event", "subject", price.alias("mark"))
        .drop_nulls()
        .filter(pl.col("mark").is_finite() & (pl.col("mark") > 0))
        .sort("ts_event", "subject", "mark")
    )
    return [(ts, subject, exact(mark)) for ts, subject, mark in rows.iter_rows()]


def _orders(predictions: pl.DataFrame) -> list[tuple[dt.datetime, str, str, str, str | None]]:
    rows = (
        predictions.filter(~pl.col("status").is_in(NOT_ORDERS))
        .select("round_ts", "model_id", "prediction_id", "subject", "output")
        .sort("round_ts", "model_id", "prediction_id")
    )
    return list(rows.iter_rows())


def _read_output(text: str | None) -> dict:
    try:
        output = json.loads(text) if text is not None else None
    except ValueError as exc:
        raise SignalError(f"output is not JSON: {exc}") from exc
    if not isinstance(output, dict):
        raise SignalError(f"output must be a JSON object, got {output!r}")
    return output


def replay(predictions: pl.DataFrame, feed: pl.DataFrame, config: TradingConfig, *, start: TradingState | None = None) -> TradingReplay:
    """Simulate every model's orders over the feed. `predictions`: prediction_id, model_id,
    subject, round_ts, status, output (JSON text); `feed`: subject, ts_event, close (and
    optionally price). `start`: the state a previous window ended with (it is not changed);
    every event must come after its `as_of`."""
    # (time, 0 = mark / 1 = order, payload): marks sort before orders of the same time.
    events: list[tuple[dt.datetime, int, tuple]] = [(ts, 0, (subject, mark)) for ts, subject, mark in _marks(feed)]
    events += [(row[0], 1, row[1:]) for row in _orders(predictions)]
    events.sort(key=lambda event: (event[0], event[1]))  # stable: keeps each list's own order

    state = copy.deepcopy(start) if start is not None else TradingState()
    if state.as_of is not None and events and events[0][0] <= state.as_of:
        raise ValueError(f"events at {events[0][0]} are not after the start state's {state.as_of}")
    books, last_price = state.books, state.last_price
    pnl_rows: list[dict] = []
    fill_rows: list[dict] = []

    for index, (at, kind, payload) in enumerate(events):
        if kind == 0:
            subject, mark = payload
            last_price[subject] = mark
            for book in books.values():
                book.mark(subject, mark, at)
        else:
            model_id, prediction_id, subject, output = payload
            book = books.setdefault(model_id, Book(config.cost_model, config.max_position_size, config.max_portfolio_size))
            fill_rows.append(_order(book, config, prediction_id, model_id, subject, output, at, last_price))
        if index + 1 == len(events) or events[index + 1][0] != at:
            for model_id in sorted(books):
                pnl_rows.append(_pnl_row(model_id, books[model_id], at))
            state.as_of = at

    return TradingReplay(
        pnl=pl.DataFrame(pnl_rows, schema=PNL) if pnl_rows else PNL.to_frame(),
        fills=pl.DataFrame(fill_rows, schema=FILLS) if fill_rows else FILLS.to_frame(),
        state=state,
    )


def _order(book: Book, config: TradingConfig, prediction_id: str, model_id: str, subject: str, output: str | None, at: dt.datetime, last_price: dict[str, Decimal]) -> dict:
    row = {"prediction_id": prediction_id, "model_id": model_id, "subject": subject, "at": at}
    traded = config.price_subject(subject)  # positions are held per feed subject, as marks arrive
    price = last_price.get(traded)
    if price is None:
        return row | {"reason": NO_PRICE}
    row["price"] = amount(price)
    try:
        requested = order_size(config.signal_mode, _read_output(output), book.size_of(traded))
    except SignalError as exc:
        return row | {"reason": str(exc)}
    fill: Fill = book.order(traded, requested, price, at)
    return row | {
        "requested": amount(fill.requested),
        "filled": amount(fill.filled),
        "closed": amount(fill.closed),
        "fee": amount(fill.fee),
        "realized_pnl": amount(fill.realized_pnl),
        "reason": fill.limited_by,
    }


def _pnl_row(model_id: str, book: Book, at: dt.datetime) -> dict:
    book.accrue(at)
    return {"model_id": model_id, "at": at, **book_figures(book)}


def book_figures(book: Book) -> dict:
    """A book's totals as the PnL rows and snapshots carry them (exact amounts)."""
    totals = book.totals()
    return {
        "net_pnl": amount(totals.net_pnl),
        "unrealized_pnl": amount(totals.unrealized_pnl),
        "realized_pnl": amount(totals.realized_pnl),
        "total_fees": amount(totals.total_fees),
        "total_carry_costs": amount(totals.total_carry_costs),
        "open_position_count": totals.open_position_count,
        "exposure": amount(totals.exposure),
    }
