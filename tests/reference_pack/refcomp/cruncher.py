"""A participant base class written to the reference engine's interface: `feed_update` keeps the
newest data per subject, `predict(subject, resolve_horizon_seconds, step_seconds)` answers."""

from typing import Any


class ModelBaseClass:
    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}

    def feed_update(self, data: dict[str, Any]) -> None:
        self.latest[data.get("symbol", "_default")] = data

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        return self._predict(subject, resolve_horizon_seconds, step_seconds)

    def _predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        raise NotImplementedError
