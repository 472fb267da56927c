"""`HourAppends`: the round engine's writes to the `inputs` and `predictions` hours, one segment
file per round (lake/segments.py), and when those hours are compacted.

It remembers, per hour, the input ids the hour holds and the identity of its files when it read
them, so that appending a round reads nothing; anyone else's write (a catch-up run's whole-hour
write) changes the identity and the ids are read again. An hour is compacted into one file once
it is over (COMPACT_AFTER after its end, when its last round's data can no longer be late), and
an open hour once the engine added COMPACT_SEGMENTS segments to it since its last compaction.
On object storage (no segments) the hour is rewritten whole each round instead.
"""

from __future__ import annotations

import datetime as dt
import os

import polars as pl

from coordinator_dagster.lake.layout import window_start_of_file
from coordinator_dagster.lake.segments import SEGMENT_PREFIX, append_segment, compact
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.windows import window_key, window_start

# The tables the engine appends to, one segment per round, and the order their compacted hour
# keeps (the predictions asset's order).
SEGMENTED = {"inputs": ("round_ts", "scope_key"), "predictions": ("round_ts", "scope_key", "model_id")}
# An hour is compacted once its last round's data can no longer be late: this long after it ends.
COMPACT_AFTER = dt.timedelta(minutes=2)
# An open hour is compacted too once this engine has added this many segments to it: readers (the
# scorer every few seconds, the API) open every file of an hour, ~1 ms each, and one-second rounds
# would leave 3,600 of them by the hour's end. A compaction rewrites the hour so far, once per
# this many rounds; one-minute rounds never reach it before the hour is over.
COMPACT_SEGMENTS = 30


class HourAppends:
    def __init__(self, lake: Lake):
        self.lake = lake
        # (table, hour) -> (identity of the hour's files when read, input ids recorded there).
        self._recorded: dict[tuple[str, str], tuple[tuple | None, set[str]]] = {}
        self._segments: dict[tuple[str, str], int] = {}  # segments added since the hour's last compaction

    def _identity(self, table: str, key: str) -> tuple | None:
        """Changes when anyone but this engine's appends rewrites the hour (a whole-hour write
        swaps the folder or replaces `data.parquet`)."""
        path = self.lake.partition_path(table, key)
        try:
            folder = os.stat(path.parent).st_ino
        except FileNotFoundError:
            return None
        try:
            stat = os.stat(path)
            return (folder, stat.st_ino, stat.st_mtime_ns)
        except FileNotFoundError:
            return (folder, None)

    def recorded_ids(self, table: str, key: str) -> set[str]:
        """Input ids the hour holds (call under the partition lock)."""
        identity = self._identity(table, key)
        cached = self._recorded.get((table, key))
        if cached is None or cached[0] != identity:
            cached = (identity, set(self.lake.read(table, key)["input_id"].to_list()))
            self._recorded[(table, key)] = cached
        return cached[1]

    def append(self, table: str, key: str, frame: pl.DataFrame) -> None:
        """Append one round's rows as a segment (call under the partition lock)."""
        ids = self.recorded_ids(table, key)
        if self.lake.storage.segments:
            append_segment(self.lake.partition_path(table, key), frame, self.lake.table(table).schema, table)
            self._segments[(table, key)] = self._segments.get((table, key), 0) + 1
        else:
            # Object storage has no segments: the hour is rewritten whole, one commit per round
            # (cost grows with the hour; docs/deployment.md says so).
            self.lake.write(table, pl.concat([self.lake.read(table, key), frame], how="vertical_relaxed"), key)
        self._recorded[(table, key)] = (self._identity(table, key), ids | set(frame["input_id"].to_list()))

    def compact(self, table: str, key: str, keep: bool = False) -> None:
        """Merge the hour's segments into one file. `keep`: the hour stays open for appends; the
        ids it holds do not change, so they are kept rather than read again."""
        with self.lake.partition_lock(table, key):
            before = self._identity(table, key)
            compact(self.lake.root, self.lake.partition_path(table, key), self.lake.table(table).schema, table, SEGMENTED[table])
            cached = self._recorded.pop((table, key), None)
            if keep and cached is not None and cached[0] == before:
                self._recorded[(table, key)] = (self._identity(table, key), cached[1])
        self._segments.pop((table, key), None)

    def compact_left_open(self, now: dt.datetime) -> None:
        """At start: compact the hours a stop (or a crash) left as segments that are over."""
        for table in SEGMENTED:
            hours = {window_key(window_start_of_file(path)) for path in self.lake.files(table) if path.name.startswith(SEGMENT_PREFIX)}
            for key in sorted(hours):
                if window_start(key) + dt.timedelta(hours=1) + COMPACT_AFTER <= now:
                    self.compact(table, key)

    def compact_closed(self, now: dt.datetime) -> list[str]:
        """Compact the hours appended to that are over (plus COMPACT_AFTER); the hours."""
        closed = sorted({key for (_, key) in self._recorded if window_start(key) + dt.timedelta(hours=1) + COMPACT_AFTER <= now})
        for key in closed:
            for table in SEGMENTED:
                self.compact(table, key)
        return closed

    def compact_crowded(self) -> list[tuple[str, str]]:
        """Compact the open hours given COMPACT_SEGMENTS segments since their last compaction;
        the (table, hour) pairs compacted."""
        crowded = sorted(pair for pair, count in self._segments.items() if count >= COMPACT_SEGMENTS)
        for table, key in crowded:
            self.compact(table, key, keep=True)
        return crowded
