"""Consecutive misses of each deployment, and when they are reported to the orchestrator.

A deployment that times out (or cannot be reached), fails, or answers something the contract
refuses `limit` rounds in a row is reported, once: MULTIPLE_TIMEOUT, MULTIPLE_FAILED or
BAD_IMPLEMENTATION (a model whose answers never fit the contract is not implemented as the
competition asks). An answer that counts resets every streak of its deployment. A redeployment
starts clean (the key is the deployment id).

Each Dagster run is a process of its own, so the streaks are kept in a JSON file (written to a
temporary name and renamed) when a path is given; without one they last as long as the object.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path

from coordinator_dagster.models.orchestrator.events import FailureCode


class Miss(StrEnum):
    TIMEOUT = "timeouts"
    FAILED = "failures"
    INVALID = "invalid"


REPORTED_AS = {Miss.TIMEOUT: FailureCode.MULTIPLE_TIMEOUT, Miss.FAILED: FailureCode.MULTIPLE_FAILED, Miss.INVALID: FailureCode.BAD_IMPLEMENTATION}


class Streaks:
    def __init__(self, limit: int, path: str | Path | None = None):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.path = Path(path) if path else None
        self.counts: dict[str, dict[str, int]] = {}
        if self.path is not None and self.path.exists():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                self.counts = {str(k): {str(m): int(n) for m, n in v.items()} for k, v in loaded.items()}
            except (ValueError, AttributeError, TypeError):
                self.counts = {}  # a damaged file costs the streaks so far, never a round

    def answered(self, deployment_id: str) -> None:
        self.counts.pop(deployment_id, None)

    def missed(self, deployment_id: str, miss: Miss) -> FailureCode | None:
        """Count one miss; the code to report when this one completes a streak of `limit`."""
        counts = self.counts.setdefault(deployment_id, {})
        counts[miss.value] = counts.get(miss.value, 0) + 1
        if counts[miss.value] >= self.limit:
            self.counts.pop(deployment_id)
            return REPORTED_AS[miss]
        return None

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(json.dumps(self.counts, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)
