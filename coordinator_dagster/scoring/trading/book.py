"""One model's trading book: its open positions (one per subject), and the fees, carry and
realized PnL it has accumulated, changed by orders and marked to market by prices.

The rules (the reference pack's simulator, with three corrections marked "Here"):
- A position is a signed notional size (> 0 long, < 0 short) with an entry price; its unrealized
  PnL is size × (price − entry) / entry.
- Every filled order pays cost_model.order_cost(filled notional): fee and spread.
- Carry accrues per second of exposure: carry_cost(|size|, seconds since the last accrual).
  Here: carry is accrued up to the moment an order changes a position, and up to every snapshot,
  not only when that subject's price ticks, so no second of exposure goes unpaid.
- An order in the position's direction adds to it; the entry becomes the price at which the
  combined notional buys the combined units. Here: that is the notional-weighted harmonic mean
  (entry = Σ size / Σ size/entry), so unrealized PnL equals the sum over the pieces; the
  reference's arithmetic mean misstates it (100 @ 100 + 100 @ 200, marked at 200: 100, not 66.67).
- An order against the position closes min(order, |size|) of it, realizing that share's PnL and
  moving that share of its accrued carry to closed carry (a partial close); whatever is left of
  the order opens a position the other way at the order's price (a reversal).
- Limits: the opening part of an order is cut to what max_position_size (one position) and
  max_portfolio_size (Σ |size| over the model's positions) leave room for. Here: the closing part
  is never cut, since reducing risk is always allowed; the reference caps the whole order, so a
  full-size reversal at the limit only closes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from coordinator_dagster.scoring.trading.config import SIMULATION_CONTEXT as C
from coordinator_dagster.scoring.trading.config import CostModel

ZERO = Decimal(0)
POSITION_LIMIT = "position limit"
PORTFOLIO_LIMIT = "portfolio limit"


def _seconds(start: dt.datetime, end: dt.datetime) -> Decimal:
    micros = (end - start) // dt.timedelta(microseconds=1)
    return C.divide(Decimal(micros), Decimal(1_000_000))


@dataclass
class Position:
    subject: str
    size: Decimal  # signed notional: > 0 long, < 0 short
    entry_price: Decimal
    price: Decimal  # the last price it was marked (or opened) at
    accrued_to: dt.datetime  # carry is paid up to here
    carry: Decimal = ZERO  # carry accrued on the open size

    @property
    def unrealized_pnl(self) -> Decimal:
        return C.divide(C.multiply(self.size, C.subtract(self.price, self.entry_price)), self.entry_price)


@dataclass(frozen=True)
class Fill:
    """What one order did: `requested` and `filled` are signed notionals (filled is requested cut
    by the limits), `closed` the part that reduced an existing position (unsigned)."""

    subject: str
    at: dt.datetime
    price: Decimal
    requested: Decimal
    filled: Decimal
    closed: Decimal
    fee: Decimal
    realized_pnl: Decimal | None  # None when nothing was closed
    limited_by: str | None


@dataclass(frozen=True)
class BookTotals:
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    total_fees: Decimal
    total_carry_costs: Decimal
    open_position_count: int
    exposure: Decimal

    @property
    def net_pnl(self) -> Decimal:
        return C.subtract(C.add(self.unrealized_pnl, self.realized_pnl), C.add(self.total_fees, self.total_carry_costs))


class Book:
    def __init__(self, cost_model: CostModel, max_position_size: Decimal, max_portfolio_size: Decimal) -> None:
        self.cost_model = cost_model
        self.max_position_size = max_position_size
        self.max_portfolio_size = max_portfolio_size
        self.positions: dict[str, Position] = {}
        self.fees = ZERO
        self.realized = ZERO
        self.closed_carry = ZERO

    def size_of(self, subject: str) -> Decimal:
        position = self.positions.get(subject)
        return position.size if position is not None else ZERO

    def exposure(self, *, excluding: str | None = None) -> Decimal:
        total = ZERO
        for subject, position in self.positions.items():
            if subject != excluding:
                total = C.add(total, C.abs(position.size))
        return total

    def accrue(self, at: dt.datetime) -> None:
        """Pay carry on every open position up to `at`."""
        for position in self.positions.values():
            self._accrue(position, at)

    def _accrue(self, position: Position, at: dt.datetime) -> None:
        if at > position.accrued_to:
            cost = self.cost_model.carry_cost(position.size, _seconds(position.accrued_to, at))
            position.carry = C.add(position.carry, cost)
            position.accrued_to = at

    def mark(self, subject: str, price: Decimal, at: dt.datetime) -> None:
        position = self.positions.get(subject)
        if position is not None:
            self._accrue(position, at)
            position.price = price

    def order(self, subject: str, requested: Decimal, price: Decimal, at: dt.datetime) -> Fill:
        """Apply a signed notional order at `price`; return what it did."""
        if price <= 0:
            raise ValueError(f"cannot trade {subject} at a non-positive price {price}")
        position = self.positions.get(subject)
        if position is not None:
            self._accrue(position, at)
        current = position.size if position is not None else ZERO
        sign = 1 if requested > 0 else -1
        against = current != 0 and (current > 0) != (requested > 0)
        closed = min(C.abs(requested), C.abs(current)) if against else ZERO
        opening = C.subtract(C.abs(requested), closed)
        opened, limited_by = self._room(subject, opening, against=against, current=current)
        filled_abs = C.add(closed, opened)
        fee = self.cost_model.order_cost(filled_abs)
        self.fees = C.add(self.fees, fee)
        realized = self._close(position, closed, price) if closed > 0 else None
        if opened > 0:
            self._open(subject, C.multiply(Decimal(sign), opened), price, at)
        return Fill(
            subject=subject,
            at=at,
            price=price,
            requested=requested,
            filled=C.multiply(Decimal(sign), filled_abs),
            closed=closed,
            fee=fee,
            realized_pnl=realized,
            limited_by=limited_by,
        )

    def _room(self, subject: str, opening: Decimal, *, against: bool, current: Decimal) -> tuple[Decimal, str | None]:
        """How much of `opening` the limits allow, and which limit cut it (if one did)."""
        if opening <= 0:
            return ZERO, None
        # After a full close the position is flat; otherwise the opening adds to |current|.
        held = ZERO if against else C.abs(current)
        position_room = max(ZERO, C.subtract(self.max_position_size, held))
        portfolio_room = max(ZERO, C.subtract(self.max_portfolio_size, C.add(self.exposure(excluding=subject), held)))
        allowed = min(opening, position_room, portfolio_room)
        if allowed == opening:
            return opening, None
        return allowed, POSITION_LIMIT if position_room <= portfolio_room else PORTFOLIO_LIMIT

    def _close(self, position: Position | None, closed: Decimal, price: Decimal) -> Decimal:
        assert position is not None
        share = C.divide(closed, C.abs(position.size))
        closed_signed = closed if position.size > 0 else C.minus(closed)
        pnl = C.divide(C.multiply(closed_signed, C.subtract(price, position.entry_price)), position.entry_price)
        self.realized = C.add(self.realized, pnl)
        moved = position.carry if share == 1 else C.multiply(position.carry, share)
        self.closed_carry = C.add(self.closed_carry, moved)
        position.carry = C.subtract(position.carry, moved)
        position.size = C.subtract(position.size, closed_signed)
        position.price = price
        if position.size == 0:
            del self.positions[position.subject]
        return pnl

    def _open(self, subject: str, size: Decimal, price: Decimal, at: dt.datetime) -> None:
        position = self.positions.get(subject)
        if position is None:
            self.positions[subject] = Position(subject=subject, size=size, entry_price=price, price=price, accrued_to=at)
            return
        units = C.add(C.divide(C.abs(position.size), position.entry_price), C.divide(C.abs(size), price))
        position.size = C.add(position.size, size)
        position.entry_price = C.divide(C.abs(position.size), units)
        position.price = price

    def totals(self) -> BookTotals:
        unrealized, carry = ZERO, self.closed_carry
        for position in self.positions.values():
            unrealized = C.add(unrealized, position.unrealized_pnl)
            carry = C.add(carry, position.carry)
        return BookTotals(
            unrealized_pnl=unrealized,
            realized_pnl=self.realized,
            total_fees=self.fees,
            total_carry_costs=carry,
            open_position_count=len(self.positions),
            exposure=self.exposure(),
        )
