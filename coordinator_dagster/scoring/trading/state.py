"""A replay's state between windows: every model's book and the last price of every subject.

Saved as frames of exact decimal text (not rounded amounts), so replaying hour by hour, each
window starting from the state the previous one ended with, gives the same PnL to the last byte
as one replay over the whole span. The state is derived data like the PnL: recomputable from
the predictions and the feed, never edited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import polars as pl

from coordinator_dagster.scoring.trading.book import Book, Position
from coordinator_dagster.scoring.trading.config import TradingConfig

UTC_TS = pl.Datetime("us", "UTC")

# One row per model that has placed an order.
BOOKS = pl.Schema({"model_id": pl.String, "fees": pl.String, "realized": pl.String, "closed_carry": pl.String})
# One row per model per open position.
POSITIONS = pl.Schema(
    {
        "model_id": pl.String,
        "subject": pl.String,
        "size": pl.String,
        "entry_price": pl.String,
        "price": pl.String,
        "accrued_to": UTC_TS,
        "carry": pl.String,
    }
)
# One row per feed subject seen; `as_of` (the last event time replayed) on every row.
PRICES = pl.Schema({"subject": pl.String, "price": pl.String, "as_of": UTC_TS})


@dataclass
class TradingState:
    books: dict[str, Book] = field(default_factory=dict)
    last_price: dict[str, Decimal] = field(default_factory=dict)
    as_of: dt.datetime | None = None  # the last event time replayed into this state


def to_frames(state: TradingState) -> dict[str, pl.DataFrame]:
    books = [{"model_id": m, "fees": str(b.fees), "realized": str(b.realized), "closed_carry": str(b.closed_carry)} for m, b in sorted(state.books.items())]
    positions = [
        {
            "model_id": model_id,
            "subject": p.subject,
            "size": str(p.size),
            "entry_price": str(p.entry_price),
            "price": str(p.price),
            "accrued_to": p.accrued_to,
            "carry": str(p.carry),
        }
        for model_id, book in sorted(state.books.items())
        for _, p in sorted(book.positions.items())
    ]
    prices = [{"subject": s, "price": str(price), "as_of": state.as_of} for s, price in sorted(state.last_price.items())]
    return {
        "books": pl.DataFrame(books, schema=BOOKS) if books else BOOKS.to_frame(),
        "positions": pl.DataFrame(positions, schema=POSITIONS) if positions else POSITIONS.to_frame(),
        "prices": pl.DataFrame(prices, schema=PRICES) if prices else PRICES.to_frame(),
    }


def from_frames(frames: dict[str, pl.DataFrame], config: TradingConfig) -> TradingState:
    state = TradingState()
    for model_id, fees, realized, closed_carry in frames["books"].iter_rows():
        book = Book(config.cost_model, config.max_position_size, config.max_portfolio_size)
        book.fees, book.realized, book.closed_carry = Decimal(fees), Decimal(realized), Decimal(closed_carry)
        state.books[model_id] = book
    for model_id, subject, size, entry, price, accrued_to, carry in frames["positions"].iter_rows():
        state.books[model_id].positions[subject] = Position(
            subject=subject, size=Decimal(size), entry_price=Decimal(entry), price=Decimal(price), accrued_to=accrued_to, carry=Decimal(carry)
        )
    for subject, price, as_of in frames["prices"].iter_rows():
        state.last_price[subject] = Decimal(price)
        state.as_of = as_of
    return state
