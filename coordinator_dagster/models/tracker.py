"""The interface participant models implement: `tick` receives data, `predict` answers.

Models keep state between rounds (price history, fitted parameters). `TrackerBase` keeps a
bounded per-subject history of the candles it is handed (every field: open, high, low, close,
volume), de-duplicated by time, so a model only writes its `predict`. A round whose input was
built by the contract's input builder carries it under `input`; `latest_input` returns it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from coordinator_dagster.models.reference_models import BUILT_INPUT_KEY


class TrackerBase:
    history_limit = 1_000

    def __init__(self) -> None:
        self._history: dict[str, OrderedDict[str, dict[str, Any]]] = {}
        self._inputs: dict[str, Any] = {}

    def tick(self, data: dict[str, Any]) -> None:
        """Receive one round's input (the `RawInput` shape: subject, round_ts, candles …)."""
        subject = data["subject"]
        if BUILT_INPUT_KEY in data:
            self._inputs[subject] = data[BUILT_INPUT_KEY]
        history = self._history.setdefault(subject, OrderedDict())
        for candle in data.get("candles", []):
            history[candle["ts"]] = candle
        while len(history) > self.history_limit:
            history.popitem(last=False)

    def candles(self, subject: str) -> list[dict[str, Any]]:
        """The subject's candles, oldest first: `{ts, open, high, low, close, volume}` each."""
        history = self._history.get(subject, {})
        return [history[ts] for ts in sorted(history)]

    def closes(self, subject: str) -> list[float]:
        return [float(candle["close"]) for candle in self.candles(subject)]

    def latest_input(self, subject: str) -> Any:
        """The newest input built by the contract's input builder for `subject` (None without one)."""
        return self._inputs.get(subject)

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        raise NotImplementedError
