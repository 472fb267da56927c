"""`ReportQueue`: the round engine's reports to Dagster, made off its loop and in order.

A runless materialization is a commit to the instance's event log (10-800 ms on a loaded machine
with SQLite); made in the loop, it delayed the next round, which at one-second rounds made rounds
late. Queued, the loop records the next round while the previous one is being reported. Jobs run
one at a time, in submission order, on one thread (the engine's and the scorer's reports share
it, so the instance takes one writer of theirs at a time).

Until `start`, a job runs at once in the caller (`RoundEngine.step` driven directly, as tests and
one-shot callers do). A job that fails is logged; what it leaves undone stays in the outbox and is
repaired at the next start.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("coordinator.rounds")

Job = Callable[[], None]


class ReportQueue:
    def __init__(self) -> None:
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.done = 0  # jobs run (failed ones included)

    def submit(self, job: Job) -> None:
        if self._thread is None:
            job()
            self.done += 1
        else:
            self._jobs.put(job)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="round-engine-reports", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Run what is queued, then stop (jobs submitted afterwards run in the caller)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join(timeout)

    def pending(self) -> int:
        return self._jobs.qsize()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:  # noqa: BLE001 - one failed report must not stop the others
                log.exception("a report to Dagster failed; the outbox keeps it for the next start")
            self.done += 1

    def wrap(self, reporter: Any) -> "QueuedReporter":
        """`reporter` whose `report` calls go through this queue (the scorer's)."""
        return QueuedReporter(reporter, self)


class QueuedReporter:
    def __init__(self, inner: Any, reports: ReportQueue):
        self.inner, self.reports = inner, reports

    def report(self, table: str, partition: str | None, description: str, metadata: dict[str, Any]) -> None:
        self.reports.submit(lambda: self.inner.report(table, partition, description, metadata))

    def reported(self, table: str, partition: str, round_stamp: str) -> bool:
        return self.inner.reported(table, partition, round_stamp)
