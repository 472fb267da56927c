"""The bounded hand-off between the receiving side (the asyncio loop reading the socket) and
the lake writer (a thread).

`put` never blocks on the writer: it takes a lock for a few microseconds. Records are keyed by
(subject, ts): a record for a key already waiting replaces it (coalesced), so a flood of
updates of the same steps costs no memory. When `capacity` distinct keys are waiting, a new key
is dropped and counted, and the dropped time range per subject is kept (two numbers per
subject) so the listener can fetch exactly that range through the REST path: memory stays
bounded whatever the message rate, and what was dropped is recovered, not lost.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from coordinator_dagster.feeds.streaming.records import Record


@dataclass
class Pending:
    record: Record
    received_at: float  # wall-clock time the message that closed the step was received


@dataclass
class BufferStats:
    accepted: int = 0
    coalesced: int = 0
    dropped: int = 0
    high_water: int = 0


class RecordBuffer:
    def __init__(self, capacity: int = 10_000):
        if capacity < 1:
            raise ValueError("buffer capacity must be at least 1")
        self.capacity = capacity
        self._pending: dict[tuple[str, int], Pending] = {}
        self._cond = threading.Condition()
        self.stats = BufferStats()
        self._dropped_ranges: dict[str, tuple[int, int]] = {}

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending)

    def put(self, records: list[Record], received_at: float) -> int:
        """Queue closed records; returns how many were dropped because the buffer was full."""
        dropped = 0
        with self._cond:
            for record in records:
                key = record.key
                if key in self._pending:
                    self.stats.coalesced += 1
                elif len(self._pending) >= self.capacity:
                    dropped += 1
                    low, high = self._dropped_ranges.get(record.subject, (record.ts_ms, record.ts_ms))
                    self._dropped_ranges[record.subject] = (min(low, record.ts_ms), max(high, record.ts_ms))
                    continue
                else:
                    self.stats.accepted += 1
                self._pending[key] = Pending(record, received_at)
            self.stats.dropped += dropped
            self.stats.high_water = max(self.stats.high_water, len(self._pending))
            if self._pending:
                self._cond.notify()
        return dropped

    def take(self, timeout: float) -> list[Pending]:
        """Everything waiting (oldest first), after waiting up to `timeout` s for something."""
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout)
            items = sorted(self._pending.values(), key=lambda p: (p.record.ts_ms, p.record.subject))
            self._pending = {}
            return items

    def take_dropped(self) -> dict[str, tuple[int, int]]:
        """Per subject, the (first, last) step open time dropped since the last call."""
        with self._cond:
            ranges, self._dropped_ranges = self._dropped_ranges, {}
            return ranges

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
