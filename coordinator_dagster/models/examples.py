"""The three example models shipped with the coordinator (deterministic, for demos and tests).

They are deliberately simple trading rules, so that their scores differ in sign and size and the
leaderboard has something to rank.
"""

from __future__ import annotations

from typing import Any

from coordinator_dagster.models.tracker import TrackerBase


class MomentumTracker(TrackerBase):
    """Bets that the last `lookback` minutes' move continues."""

    lookback = 15

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        closes = self.closes(subject)
        if len(closes) <= self.lookback:
            return {"value": 0.0}
        return {"value": closes[-1] / closes[-1 - self.lookback] - 1.0}


class MeanReversionTracker(TrackerBase):
    """Bets that the price returns to its moving average."""

    window = 30

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        closes = self.closes(subject)[-self.window :]
        if len(closes) < 2:
            return {"value": 0.0}
        mean = sum(closes) / len(closes)
        return {"value": (mean - closes[-1]) / mean}


class ContrarianTracker(TrackerBase):
    """Bets against the last minute's move."""

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        closes = self.closes(subject)
        if len(closes) < 2:
            return {"value": 0.0}
        return {"value": -(closes[-1] / closes[-2] - 1.0)}
