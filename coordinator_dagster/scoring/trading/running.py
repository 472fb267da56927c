"""A model's performance figures carried from one replay window to the next: the running peak
and worst fall of net PnL, the sums Sortino needs, and the count of closing fills and winners.

Folding windows one after another gives exactly the figures `performance.summary` computes over
all of the model's PnL rows at once (the same Decimal operations in the same order), so an hourly
snapshot holds the model's figures since its first order without reading its whole history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal

from coordinator_dagster.scoring.trading.config import SIMULATION_CONTEXT as C

ZERO = Decimal(0)


@dataclass
class Running:
    last_net: Decimal | None = None  # the net PnL of the model's latest PnL row
    peak: Decimal | None = None
    max_drawdown: Decimal = ZERO
    change_count: int = 0  # changes of net PnL between consecutive rows
    change_sum: Decimal = ZERO
    downside_square_sum: Decimal = ZERO  # Σ min(change, 0)²
    closes: int = 0  # closing fills
    wins: int = 0  # closing fills with realized PnL > 0

    def fold(self, net_series: Sequence[Decimal], realized: Sequence[Decimal]) -> None:
        """Take in the model's next PnL rows (oldest first) and closing fills."""
        for value in net_series:
            if self.last_net is not None:
                change = C.subtract(value, self.last_net)
                self.change_count += 1
                self.change_sum = C.add(self.change_sum, change)
                if change < 0:
                    self.downside_square_sum = C.add(self.downside_square_sum, C.multiply(change, change))
            self.peak = value if self.peak is None or value > self.peak else self.peak
            self.max_drawdown = max(self.max_drawdown, C.subtract(self.peak, value))
            self.last_net = value
        self.closes += len(realized)
        self.wins += sum(1 for pnl in realized if pnl > 0)

    @property
    def hit_rate(self) -> float | None:
        return self.wins / self.closes if self.closes else None

    @property
    def sortino_ratio(self) -> float | None:
        if self.downside_square_sum == 0:
            return None
        n = Decimal(self.change_count)
        deviation = C.sqrt(C.divide(self.downside_square_sum, n))
        return float(C.divide(C.divide(self.change_sum, n), deviation))

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> "Running":
        decimals = ("last_net", "peak", "max_drawdown", "change_sum", "downside_square_sum")
        return cls(**{k: (Decimal(v) if k in decimals and v is not None else v) for k, v in data.items()})
