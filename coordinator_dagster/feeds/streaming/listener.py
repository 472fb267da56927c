"""The live listener: connection lifecycle, closing steps, the writer and gap-filler threads.

Three parts run concurrently so the receiving side never waits for the disk or the network:

- the asyncio loop reads the stream, closes steps (`StepCloser`) and puts closed records into
  the bounded `RecordBuffer` (microseconds per message);
- the writer thread drains the buffer in micro-batches (everything waiting at once) and merges
  them into the hour partitions (`LakeWriter`), reporting each write to Dagster;
- the gap thread fetches missing steps through the batch source (`Source.fetch`, the REST
  path) and writes them the same way: after every (re)connect, from the newest step written
  before to the first step of the new connection; for records the buffer had to drop; and for
  steps whose updates were malformed.

Every state change logs one line on the `coordinator.feeds.listen` logger: `connected`,
`disconnected` (with the reconnect delay), `gap filled`, `degraded` and `recovered`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from coordinator_dagster.feeds.streaming.buffer import Pending, RecordBuffer
from coordinator_dagster.feeds.streaming.records import Record, StepCloser
from coordinator_dagster.feeds.streaming.sources import Malformed, StreamDisconnected, StreamSource, Update
from coordinator_dagster.feeds.streaming.writer import LakeWriter, WriteResult
from coordinator_dagster.feeds.sources import Source

log = logging.getLogger("coordinator.feeds.listen")

UTC = dt.timezone.utc
MALFORMED_LOG_FIRST = 20  # log every malformed message up to this many, then one in 100
DEGRADED_AFTER_ATTEMPTS = 5  # failed connection attempts in a row before the listener says it is degraded


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class ListenerConfig:
    capacity: int = 10_000  # closed records waiting for the writer, at most
    backoff_initial: float = 1.0  # first reconnect delay (s); doubles per failed attempt
    backoff_max: float = 60.0
    initial_backfill: dt.timedelta = dt.timedelta(hours=1)  # an empty lake is filled this far back
    max_gap_fill: dt.timedelta = dt.timedelta(days=1)  # longer outages: backfill the rest with the asset
    gap_settle_seconds: float = 1.0  # wait after a step closes before asking REST for it
    flush_interval: float = 0.5


@dataclass
class ListenerStats:
    connections: int = 0
    disconnects: int = 0
    messages: int = 0
    updates: int = 0
    malformed: int = 0
    closed: int = 0
    duplicates: int = 0
    dropped: int = 0
    written: int = 0
    gap_fills: int = 0
    gap_records: int = 0
    writes: int = 0
    degraded: set[str] = field(default_factory=set)


@dataclass(order=True)
class _Gap:
    due: float
    start_ms: int
    end_ms: int
    reason: str = field(compare=False)


class Listener:
    def __init__(
        self,
        stream: StreamSource,
        writer: LakeWriter,
        gap_source: Source | None,
        config: ListenerConfig | None = None,
        *,
        on_written: Callable[[list[Pending], list[WriteResult]], None] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ):
        self.stream = stream
        self.writer = writer
        self.gap_source = gap_source
        self.config = config or ListenerConfig()
        self.on_written = on_written
        self.clock = clock
        self.rng = rng or random.Random()
        self.step_ms = stream.step_ms
        self.buffer = RecordBuffer(self.config.capacity)
        self.closer = StepCloser(stream.step_ms, prefer_earliest=stream.prefer_earliest)
        self.stats = ListenerStats()
        self._last: dict[str, int] = {}  # newest step written or scheduled, per subject
        self._fresh: set[str] = set()  # subjects not yet seen on the current connection
        self._gaps: list[_Gap] = []
        self._gap_cond = threading.Condition()
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._lock = threading.Lock()

    # ---- lifecycle -------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop from any thread: the receiving loop ends, the writer drains what is closed."""
        self._stopping.set()
        with self._lock:
            if self._loop is not None and self._task is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._task.cancel)

    async def run(self) -> None:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
        writer = threading.Thread(target=self._write_loop, name="feeds-writer", daemon=True)
        gaps = threading.Thread(target=self._gap_loop, name="feeds-gaps", daemon=True)
        self._last = self.writer.newest(self.stream.subjects)
        for subject, ts in sorted(self._last.items()):
            log.info("newest %s %s record in the lake: %s", subject, self.stream.source, _when(ts))
        writer.start()
        gaps.start()
        try:
            await asyncio.to_thread(self.stream.prepare)
            if not self._stopping.is_set():
                await self._receive()
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
        finally:
            self._stopping.set()
            self.buffer.wake()
            with self._gap_cond:
                self._gap_cond.notify_all()
            await asyncio.to_thread(writer.join)
            await asyncio.to_thread(gaps.join)
            await asyncio.to_thread(self.writer.flush)
            with self._gap_cond:
                if self._gaps:
                    log.warning("stopped with %d gap fill(s) pending: %s", len(self._gaps), ", ".join(f"{_when(g.start_ms)} → {_when(g.end_ms)}" for g in self._gaps))
            log.info(
                "stopped: %d messages, %d records written, %d gap-filled, %d malformed, %d duplicates, %d dropped (refetched)",
                self.stats.messages, self.stats.written, self.stats.gap_records, self.stats.malformed, self.stats.duplicates, self.stats.dropped,
            )

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: half the capped delay plus a random other half, so
        listeners that lost the same server do not come back in lockstep."""
        delay = min(self.config.backoff_max, self.config.backoff_initial * 2 ** (attempt - 1))
        return delay / 2 + self.rng.uniform(0, delay / 2)

    async def _receive(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            stream = self.stream.stream()
            connected = False
            reason = "stream ended"
            try:
                while True:
                    received, items = await asyncio.wait_for(anext(stream), self.stream.idle_timeout)
                    if not connected:
                        connected, attempt = True, 0
                        self._on_connect()
                    self._handle(received, items)
            except StopAsyncIteration:
                pass
            except asyncio.TimeoutError:
                reason = f"no message for {self.stream.idle_timeout:g} s"
            except StreamDisconnected as error:
                reason = str(error)
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()
            if self._stopping.is_set():
                break
            attempt += 1
            self.stats.disconnects += 1
            delay = self._delay(attempt)
            log.warning("disconnected: %s; reconnecting in %.2f s (attempt %d)", reason, delay, attempt)
            if attempt == DEGRADED_AFTER_ATTEMPTS:
                self._degrade("connection", f"no data from {self.stream.describe()} after {attempt} attempts; still retrying")
            await asyncio.sleep(delay)

    def _on_connect(self) -> None:
        self.stats.connections += 1
        # Updates of forming steps from before the drop may not be final: forget them, and let
        # the gap fill take every step from the newest one written to the new connection's first.
        self.closer.reset()
        self._fresh = set(self.stream.subjects)
        log.info("connected: %s (connection %d)", self.stream.describe(), self.stats.connections)
        self._recover("connection", "the stream delivers data again")

    # ---- receiving ---------------------------------------------------------------------------
    def _handle(self, received: float, items: list) -> None:
        self.stats.messages += 1
        closed: list[Record] = []
        for item in items:
            if isinstance(item, Malformed):
                self._malformed(item)
                continue
            assert isinstance(item, Update)
            record = item.record
            self.stats.updates += 1
            if record.subject in self._fresh:
                self._first_on_connection(record)
            if self.stream.closed_records:
                if self.closer.released(record.key):
                    self.stats.duplicates += 1
                    continue
                self.closer.mark_released(record.key)
                closed.append(record)
                continue
            duplicates = self.closer.duplicates
            ready, refetch = self.closer.update(record, item.rank)
            self.stats.duplicates += self.closer.duplicates - duplicates
            closed.extend(ready)
            for subject, start, end in refetch:
                self._request_gap(start, end, f"{subject} steps the stream skipped or garbled")
        if closed:
            self.stats.closed += len(closed)
            for record in closed:
                self._last[record.subject] = max(record.ts_ms, self._last.get(record.subject, record.ts_ms))
            dropped = self.buffer.put(closed, received)
            if dropped:
                self.stats.dropped += dropped
                self._degrade("buffer", f"writer behind, buffer full ({self.buffer.capacity} records): dropping records; they will be fetched through REST")

    def _first_on_connection(self, record: Record) -> None:
        self._fresh.discard(record.subject)
        first = record.ts_ms
        if self.stream.first_step_partial:
            # Joined mid-step: the step's first updates may be missing, so REST serves it.
            self.closer.skip_through(record.subject, first)
            end = first + self.step_ms
        else:
            end = first
        known = self._last.get(record.subject)
        if known is not None:
            start = known + self.step_ms
        else:
            back = int(self.config.initial_backfill.total_seconds() * 1000)
            start = (first - back) // self.step_ms * self.step_ms
        if start < end:
            self._request_gap(start, end, f"{record.subject} since {'the newest record' if known is not None else 'start-up'}")
        self._last[record.subject] = max(end - self.step_ms, known if known is not None else end - self.step_ms)

    def _malformed(self, item: Malformed) -> None:
        self.stats.malformed += 1
        n = self.stats.malformed
        if n <= MALFORMED_LOG_FIRST or n % 100 == 0:
            log.warning("malformed message skipped (%d so far): %s", n, item.reason)
        if item.subject is not None and item.ts_ms is not None and item.ts_ms % self.step_ms == 0 and not self.stream.closed_records:
            self.closer.taint(item.subject, item.ts_ms)

    def _degrade(self, what: str, message: str) -> None:
        if what not in self.stats.degraded:
            self.stats.degraded.add(what)
            log.warning("degraded: %s", message)

    def _recover(self, what: str, message: str) -> None:
        if what in self.stats.degraded:
            self.stats.degraded.discard(what)
            log.info("recovered: %s", message)

    # ---- gap fill ------------------------------------------------------------------------------
    def _request_gap(self, start_ms: int, end_ms: int, reason: str) -> None:
        limit = int(self.config.max_gap_fill.total_seconds() * 1000)
        if end_ms - start_ms > limit:
            log.warning(
                "gap %s → %s is longer than %s: filling the last part only; backfill the rest with the feed_records asset",
                _when(start_ms), _when(end_ms), self.config.max_gap_fill,
            )
            start_ms = end_ms - limit
        due = end_ms / 1000 + self.config.gap_settle_seconds
        with self._gap_cond:
            self._gaps.append(_Gap(due, start_ms, end_ms, reason))
            self._gap_cond.notify()

    def _gap_loop(self) -> None:
        failures = 0
        while True:
            with self._gap_cond:
                while not self._stopping.is_set():
                    now = self.clock()
                    due = [g for g in self._gaps if g.due <= now]
                    if due:
                        # Requests made together (one per subject after a reconnect) become one fetch.
                        self._gap_cond.wait(0.1)
                        due = [g for g in self._gaps if g.due <= self.clock()]
                        break
                    wait = min((g.due for g in self._gaps), default=now + 1.0) - now
                    self._gap_cond.wait(min(max(wait, 0.01), 1.0))
                if self._stopping.is_set():
                    # Steps already closed are still worth filling before exiting.
                    due = [g for g in self._gaps if g.due <= self.clock()]
                    if not due:
                        return
                for g in due:
                    self._gaps.remove(g)
            start, end = min(g.start_ms for g in due), max(g.end_ms for g in due)
            reasons = sorted({g.reason for g in due})
            try:
                count = self._fill(start, end)
            except Exception as error:  # noqa: BLE001 - any fault of the REST path: retried, the listener goes on
                failures += 1
                delay = self._delay(failures)
                self._degrade("gap-fill", f"gap fill {_when(start)} → {_when(end)} failed ({type(error).__name__}: {str(error)[:200]}); retrying in {delay:.1f} s")
                with self._gap_cond:
                    self._gaps.extend(_Gap(self.clock() + delay, g.start_ms, g.end_ms, g.reason) for g in due)
                if self._stopping.is_set():
                    return
                continue
            failures = 0
            expected = len(self.stream.subjects) * ((end - start) // self.step_ms)
            log.info(
                "gap filled: %s → %s (%s): %d records from %s%s",
                _when(start), _when(end), "; ".join(reasons), count, type(self.gap_source).__name__ if self.gap_source else "nowhere",
                f", {expected - count} missing at the source" if count < expected else "",
            )
            self._recover("gap-fill", "gap fill works again")

    def _fill(self, start_ms: int, end_ms: int) -> int:
        if self.gap_source is None:
            return 0
        start = dt.datetime.fromtimestamp(start_ms / 1000, UTC)
        end = dt.datetime.fromtimestamp(end_ms / 1000, UTC)
        frame = self.gap_source.fetch(start, end, now=dt.datetime.fromtimestamp(self.clock(), UTC))
        records = [
            Record(row["subject"], int(row["ts_event"].timestamp() * 1000), close=row["close"], open=row["open"], high=row["high"], low=row["low"], volume=row["volume"])
            for row in frame.iter_rows(named=True)
            if row["subject"] in self.stream.subjects
        ]
        records = [r for r in records if start_ms <= r.ts_ms < end_ms]
        if records:
            self.writer.write(records, via="gap fill")
        self.stats.gap_fills += 1
        self.stats.gap_records += len(records)
        return len(records)

    # ---- writing -------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        failures = 0
        while True:
            stopping = self._stopping.is_set()
            items = self.buffer.take(0.05 if stopping else self.config.flush_interval)
            if items:
                try:
                    results = self.writer.write([p.record for p in items])
                except Exception as error:  # noqa: BLE001 - a disk or lake fault must not kill the listener
                    failures += 1
                    delay = self._delay(failures)
                    self._degrade("lake", f"lake write failed ({type(error).__name__}: {error}); retrying in {delay:.1f} s")
                    for p in items:
                        self.buffer.put([p.record], p.received_at)
                    if self._stopping.wait(delay) and failures > 3:
                        log.error("stopping with %d records unwritten after %d failed writes", len(items), failures)
                        return
                    continue
                failures = 0
                self._recover("lake", "lake writes work again")
                self.stats.writes += 1
                self.stats.written += len(items)
                if self.on_written is not None:
                    self.on_written(items, results)
            for subject, (low, high) in self.buffer.take_dropped().items():
                self._request_gap(low, high + self.step_ms, f"{subject} records dropped while the buffer was full")
            if "buffer" in self.stats.degraded and len(self.buffer) < self.buffer.capacity // 2:
                self._recover("buffer", f"writer caught up ({self.stats.dropped} records dropped so far, refetched through REST)")
            if stopping and not items and not len(self.buffer):
                return


@contextlib.contextmanager
def running(listener: Listener, timeout: float = 30.0) -> Iterator[Listener]:
    """Run `listener` in a thread of its own for the `with` block (tests, benchmarks)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(listener.run())
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(error)

    thread = threading.Thread(target=target, name="feeds-listener", daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener.stop()
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("the listener did not stop in time")
    if errors:
        raise errors[0]
