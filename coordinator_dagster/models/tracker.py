"""The interface participant models implement: `tick` receives data, `predict` answers.

Models keep state between rounds (price history, fitted parameters). `TrackerBase` keeps a
bounded per-subject history of closes from the candles it is handed, de-duplicated by time, so
a model only writes its `predict`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class TrackerBase:
    history_limit = 1_000

    def __init__(self) -> None:
        self._history: dict[str, OrderedDict[str, float]] = {}

    def tick(self, data: dict[str, Any]) -> None:
        """Receive one round's input (the `RawInput` shape: subject, round_ts, candles …)."""
        history = self._history.setdefault(data["subject"], OrderedDict())
        for candle in data.get("candles", []):
            history[candle["ts"]] = float(candle["close"])
        while len(history) > self.history_limit:
            history.popitem(last=False)

    def closes(self, subject: str) -> list[float]:
        history = self._history.get(subject, {})
        return [history[ts] for ts in sorted(history)]

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        raise NotImplementedError
