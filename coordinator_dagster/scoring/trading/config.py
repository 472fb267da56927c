"""What a trading competition is configured by: the cost model (fee and spread per order, carry
per second of exposure), the signal mode, and the position and portfolio limits.

Sizes are notional amounts in the quote currency (an order of 1000 at price 100 buys 10 units);
the limits bound the absolute notional of one position and the sum over a model's positions.
Defaults are the reference pack's (fee 0.1 %, spread 0.01 %, carry 10.95 % a year, limits 10
and 20, signal mode `target`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Literal

# All simulation arithmetic happens in this context, so a replay gives the same digits anywhere.
SIMULATION_CONTEXT = Context(prec=34, rounding=ROUND_HALF_EVEN)
# Amounts in frames: 12 decimal places, half to even.
AMOUNT_SCALE = 12
AMOUNT_QUANTUM = Decimal(1).scaleb(-AMOUNT_SCALE)

SECONDS_PER_YEAR = 365 * 86_400

SignalMode = Literal["order", "delta", "target"]
SIGNAL_MODES: tuple[str, ...] = ("order", "delta", "target")


def exact(value: float | int | str | Decimal) -> Decimal:
    """A number as the Decimal its shortest text spells (0.1 → Decimal('0.1'), not the binary
    float's 55 digits), so configured and fed prices mean what they say."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


@dataclass(frozen=True)
class CostModel:
    trading_fee_pct: Decimal = Decimal("0.001")
    spread_pct: Decimal = Decimal("0.0001")
    carry_annual_pct: Decimal = Decimal("0.1095")

    def __post_init__(self) -> None:
        for name in ("trading_fee_pct", "spread_pct", "carry_annual_pct"):
            value = exact(getattr(self, name))
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            object.__setattr__(self, name, value)

    def order_cost(self, size: Decimal) -> Decimal:
        """Fee plus spread paid on trading `size` notional, in either direction."""
        c = SIMULATION_CONTEXT
        return c.multiply(c.add(self.trading_fee_pct, self.spread_pct), c.abs(size))

    def carry_cost(self, size: Decimal, seconds: Decimal) -> Decimal:
        """Carry on `size` notional held for `seconds`: annual rate × |size| × seconds / year."""
        c = SIMULATION_CONTEXT
        return c.divide(c.multiply(c.multiply(self.carry_annual_pct, c.abs(size)), seconds), Decimal(SECONDS_PER_YEAR))


@dataclass(frozen=True)
class TradingConfig:
    cost_model: CostModel = field(default_factory=CostModel)
    signal_mode: SignalMode = "target"
    max_position_size: Decimal = Decimal(10)
    max_portfolio_size: Decimal = Decimal(20)
    # prediction subject → feed subject whose price it trades at (e.g. BTC → BTCUSDT); a subject
    # not listed trades at its own feed subject.
    price_subjects: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.signal_mode not in SIGNAL_MODES:
            raise ValueError(f"signal_mode must be one of {SIGNAL_MODES}, got {self.signal_mode!r}")
        position, portfolio = exact(self.max_position_size), exact(self.max_portfolio_size)
        if position <= 0 or portfolio <= 0:
            raise ValueError("max_position_size and max_portfolio_size must be positive")
        if portfolio < position:
            raise ValueError("max_portfolio_size must be >= max_position_size")
        object.__setattr__(self, "max_position_size", position)
        object.__setattr__(self, "max_portfolio_size", portfolio)

    def price_subject(self, subject: str) -> str:
        return self.price_subjects.get(subject, subject)


# The reference trading pack's own settings (its engine defaults above are overridden there):
# orders, limits wide enough not to bind, BTC and ETH traded at their USDT pairs' prices.
PACK_CONFIG = TradingConfig(
    signal_mode="order",
    max_position_size=Decimal(1_000_000),
    max_portfolio_size=Decimal(1_000_000),
    price_subjects={"BTC": "BTCUSDT", "ETH": "ETHUSDT"},
)
