"""Interleaving readers with a writer by counting, not by the clock.

Tests of "readers keep getting whole answers while a writer replaces data" used to run for a
time window and then assert how much happened in it, which fails on a slow or loaded machine.
Here the writer does a fixed number of writes and, after each one, waits until every reader has
finished requests that began after that write; the readers never wait, so their requests also
overlap the writes. The counts a test asserts then follow from its own loop, whatever the speed.
"""

from __future__ import annotations

import threading

# Only bounds a wait for readers that died or hung; a live reader finishes a request far sooner.
STALL_SECONDS = 120.0


class ReadTurns:
    """Counts finished requests per reader; lets a writer wait for fresh reads by every reader."""

    def __init__(self, readers: int):
        self._finished = [0] * readers
        self._changed = threading.Condition()

    def finished(self, reader: int) -> None:
        """Called by reader number `reader` after each request, successful or not."""
        with self._changed:
            self._finished[reader] += 1
            self._changed.notify_all()

    def count(self, reader: int) -> int:
        with self._changed:
            return self._finished[reader]

    def wait_for_fresh_reads(self, reads: int = 2) -> None:
        """Block until every reader has finished `reads` more requests than it had on entry.

        With the default of two, each reader has finished at least one request that started after
        this call began (the first may have been in flight already), so it has seen the last write.
        """
        with self._changed:
            targets = [n + reads for n in self._finished]
            done = self._changed.wait_for(
                lambda: all(n >= t for n, t in zip(self._finished, targets, strict=True)), timeout=STALL_SECONDS
            )
        if not done:
            raise AssertionError(f"readers stalled: finished {self._finished}, waiting for {targets}")
