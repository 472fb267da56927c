"""The signal modes: how a model's answer becomes a signed notional order (> 0 buys, < 0 sells).

- order:  {"action": "buy" | "sell", "amount": a}: trade a (a ≤ 0 does nothing).
- delta:  {"direction": "long" | "short", "leverage": s}: trade s that way (s ≤ 0 does nothing).
- target: {"signal": t}: move the position to t (> 0 long, < 0 short, 0 flat), i.e. trade
  t − current size; a target across zero closes and reverses in one order.

An answer a mode cannot read raises SignalError with the reason, which the replay records on
the order's row instead of trading.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from coordinator_dagster.scoring.trading.config import SIMULATION_CONTEXT as C
from coordinator_dagster.scoring.trading.config import SignalMode, exact

ZERO = Decimal(0)


class SignalError(ValueError):
    """An answer the signal mode cannot turn into an order."""


def _number(output: Mapping[str, Any], key: str) -> Decimal:
    value = output.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise SignalError(f"{key!r} must be a number, got {value!r}")
    try:
        number = exact(value)
    except InvalidOperation as exc:
        raise SignalError(f"{key!r} must be a number, got {value!r}") from exc
    if not number.is_finite():
        raise SignalError(f"{key!r} must be finite, got {value!r}")
    return number


def _choice(output: Mapping[str, Any], key: str, choices: Mapping[str, int]) -> int:
    value = output.get(key)
    if value not in choices:
        raise SignalError(f"{key!r} must be one of {sorted(choices)}, got {value!r}")
    return choices[value]


def order_size(mode: SignalMode, output: Mapping[str, Any], current: Decimal) -> Decimal:
    """The signed notional to trade for `output` given the current signed position size."""
    if mode == "order":
        side = _choice(output, "action", {"buy": 1, "sell": -1})
        amount = _number(output, "amount")
        return C.multiply(Decimal(side), amount) if amount > 0 else ZERO
    if mode == "delta":
        side = _choice(output, "direction", {"long": 1, "short": -1})
        size = _number(output, "leverage")
        return C.multiply(Decimal(side), size) if size > 0 else ZERO
    if mode == "target":
        return C.subtract(_number(output, "signal"), current)
    raise SignalError(f"unknown signal mode {mode!r}")
