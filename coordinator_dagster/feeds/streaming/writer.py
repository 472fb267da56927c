"""Writing closed stream records into the lake's `feed_records` hour partitions, and reporting
each write (to Dagster, through the callback the CLI binds to its instance).

Each write is a read-merge-write of one hour partition under `Lake.partition_lock`, through
`Lake.write` (schema conformed, temporary file + atomic rename): readers see the old or the new
partition, concurrent writers of the same hour (the gap fill, a second listener) serialize, and
a record already stored is replaced by the same key's newest value, as the batch path does.
After the write, a `WriteEvent` for that hour partition goes to the `report` callback (the
listener's reports it as a runless `AssetMaterialization` so the UI's asset page and the sensors'
event queries see it; this package does not import Dagster).
Reporting goes through a thread of its own (`EventReporter`): a SQLite event-log commit costs
10-200 ms here, which must not delay the next lake write; when events come faster than the
instance takes them, the pending ones of a partition coalesce into its newest.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.windows import WINDOW_KEY_FORMAT
from coordinator_dagster.feeds.records import merge_records
from coordinator_dagster.feeds.streaming.records import Record, records_frame

log = logging.getLogger("coordinator.feeds.listen")

TABLE = "feed_records"


@dataclass(frozen=True)
class WriteResult:
    partition: str
    new_records: int  # rows the partition did not hold before
    partition_records: int
    written_at: float  # wall-clock time the partition file was in place


@dataclass(frozen=True)
class WriteEvent:
    """One partition write, as reported (the metadata values are ints and strings)."""

    table: str
    partition: str
    description: str
    metadata: dict[str, int | str]


Report = Callable[[WriteEvent], None]


def hour_key(ts_ms: int) -> str:
    """The WINDOW_PARTITIONS key (the hour) holding a record."""
    hour_ms = ts_ms - ts_ms % 3_600_000
    return dt.datetime.fromtimestamp(hour_ms // 1000, dt.timezone.utc).strftime(WINDOW_KEY_FORMAT)


class LakeWriter:
    def __init__(
        self,
        lake: Lake,
        *,
        source: str,
        kind: str,
        granularity: str,
        report: Report | None = None,
        origin: str = "coordinator feeds listen",
    ):
        self.lake = lake
        self.source, self.kind, self.granularity = source, kind, granularity
        self.report = report  # None: no events reported
        self.origin = origin
        self._reporter: EventReporter | None = None
        self._reported = 0
        # Called with each write's results once its files are in place (the round engine wakes).
        self.on_write: Callable[[list[WriteResult]], None] | None = None

    def write(self, records: Iterable[Record], *, via: str = "stream") -> list[WriteResult]:
        by_hour: dict[str, list[Record]] = {}
        for record in records:
            by_hour.setdefault(hour_key(record.ts_ms), []).append(record)
        results = []
        for key in sorted(by_hour):
            frame = records_frame(by_hour[key], source=self.source, kind=self.kind, granularity=self.granularity)
            with self.lake.partition_lock(TABLE, key):
                existing = self._read(key)
                merged = merge_records(existing, frame)
                if merged.equals(existing):
                    continue  # nothing new: no rewrite, no event
                self.lake.write(TABLE, merged, key)
                written_at = time.time()
            new = merged.height - existing.height
            result = WriteResult(key, new, merged.height, written_at)
            results.append(result)
            self._report(result, merged, via)
        if results and self.on_write is not None:
            self.on_write(results)
        return results

    def _report(self, result: WriteResult, merged: pl.DataFrame, via: str) -> None:
        if self.report is None:
            return
        if self._reporter is None:
            self._reporter = EventReporter(self.report)
        self._reporter.submit(
            WriteEvent(
                TABLE,
                result.partition,
                f"{via} write by {self.origin}",
                {
                    "records": result.partition_records,
                    "new_records": result.new_records,
                    "newest_record": str(merged["ts_event"].max()),
                    "source": self.source,
                    "written_via": via,
                },
            )
        )

    @property
    def events_reported(self) -> int:
        return self._reported + (self._reporter.reported if self._reporter is not None else 0)

    def flush(self, timeout: float = 10.0) -> None:
        """Report every pending event (at shutdown)."""
        if self._reporter is not None:
            self._reporter.close(timeout)
            self._reported += self._reporter.reported
            self._reporter = None

    def _read(self, key: str) -> pl.DataFrame:
        """The stored partition, read from one open handle: a writer that does not take the
        partition lock (a `feed_records` run) may rename a new file into place meanwhile, and
        reading by path could then mix the old file's footer with the new file's pages."""
        path = self.lake.partition_path(TABLE, key)
        self.lake.storage.sync_files([path])
        try:
            with open(path, "rb") as handle:
                frame = pl.read_parquet(handle)
        except FileNotFoundError:
            return schemas.empty(schemas.FEED_RECORDS)
        return schemas.conform(frame, schemas.FEED_RECORDS, TABLE)

    def newest(self, subjects: Iterable[str], search_hours: int = 48) -> dict[str, int]:
        """The newest stored step per subject of this source, from the newest hour partitions."""
        wanted = set(subjects)
        found: dict[str, int] = {}
        for path in sorted(self.lake.files(TABLE), reverse=True)[:search_hours]:
            with open(path, "rb") as handle:
                frame = pl.read_parquet(handle, columns=["source", "subject", "kind", "granularity", "ts_event"])
            frame = frame.filter(
                (pl.col("source") == self.source) & (pl.col("kind") == self.kind) & (pl.col("granularity") == self.granularity)
            )
            for subject, ts in frame.group_by("subject").agg(pl.col("ts_event").max()).iter_rows():
                if subject in wanted and subject not in found:
                    found[subject] = int(ts.timestamp() * 1000)
            if wanted <= set(found):
                break
        return found


class EventReporter:
    """Hands write events to `report` from a thread of its own."""

    def __init__(self, report: Report):
        self.report = report
        self.reported = 0
        self._pending: dict[str, WriteEvent] = {}  # partition → newest event, in submission order
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="feeds-events", daemon=True)
        self._thread.start()

    def submit(self, event: WriteEvent) -> None:
        with self._cond:
            self._pending.pop(event.partition, None)
            self._pending[event.partition] = event
            self._cond.notify()

    def close(self, timeout: float) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                partition = next(iter(self._pending))
                event = self._pending.pop(partition)
            try:
                self.report(event)
                self.reported += 1
            except Exception as error:  # noqa: BLE001 - the lake write stands; the UI misses one event
                log.warning("could not report the write of %s %s: %s: %s", event.table, partition, type(error).__name__, error)
