"""Writing the lake: whole partitions replaced atomically, events appended, partitions locked.

A write goes to a dot-named temporary file in the same folder and is renamed into place, so a
reader sees the old or the new partition, never half of one, and re-writing a partition
replaces it (never duplicates rows). Every frame is conformed to its table's schema first.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.layout import LakeLayout
from coordinator_dagster.lake.segments import replace_hour, segment_names
from coordinator_dagster.windows import WINDOW_KEY_FORMAT


# Rows per row group of a table's file, and the columns its rows are sorted by when it has them:
# an hour of predictions or scores sorted by model then round, in row groups of a few models each
# with min/max statistics, lets a reader asking for some models (the dashboard's charts) skip the
# other row groups. Files written before are read as they are.
ROW_GROUP_ROWS = 2048
SORT_COLUMNS = ("model_id", "round_ts")


class LakeWrites(LakeLayout):
    """The writing half of `Lake`."""

    def _write_atomic(self, path: Path, frame: pl.DataFrame) -> None:
        if all(c in frame.columns for c in SORT_COLUMNS):
            # Stable: rows equal on the sort columns keep the order they were given in.
            frame = frame.sort(SORT_COLUMNS, maintain_order=True)
        self._write_stored_order(path, frame)

    def _write_stored_order(self, path: Path, frame: pl.DataFrame) -> None:
        """`_write_atomic` for a frame already in the order its file stores (lake/batches.py)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name starts with a dot and does not end in .parquet: no glob sees it.
        tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            frame.write_parquet(tmp, compression="zstd", statistics=True, row_group_size=ROW_GROUP_ROWS)
            self.storage.commit(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def write(self, name: str, frame: pl.DataFrame, key: str | None = None) -> Path:
        """Replace one partition (or a single table) with `frame`, conformed to the table schema."""
        table = self.table(name)
        frame = schemas.conform(frame, table.schema, name)
        path = self.partition_path(name, key)
        if table.layout == "window" and segment_names(path.parent):
            replace_hour(self.root, path, frame)  # its segments go in the same step
        else:
            self._write_atomic(path, frame)
        return path

    def write_windows(self, name: str, frame: pl.DataFrame, column: str, keys: Iterable[str]) -> int:
        """Write `frame` split into the hourly partitions `keys` by `column`; every key is
        written, empty ones too, so re-materializing a window that lost rows replaces it."""
        hour = pl.col(column).dt.truncate("1h").dt.strftime(WINDOW_KEY_FORMAT)
        parts = {k[0]: p.drop("__key") for k, p in frame.with_columns(hour.alias("__key")).group_by("__key")}
        keys = list(keys)
        stray = sorted(set(parts) - set(keys))
        if stray:
            raise ValueError(f"{name}: rows outside the partitions being written: {stray[:3]}")
        empty = frame.clear()
        for key in keys:
            self.write(name, parts.get(key, empty), key)
        return len(keys)

    def remove_windows(self, name: str, keys: Iterable[str]) -> list[str]:
        """Delete the hourly partitions `keys` of a window table (retention); the keys that had a
        file. A partition's lock is held while its file goes, so no writer of it is cut short."""
        removed = []
        for key in keys:
            path = self.partition_path(name, key)
            with self.partition_lock(name, key):
                if self.storage.remove(path):
                    removed.append(key)
                for segment in segment_names(path.parent):
                    (path.parent / segment).unlink(missing_ok=True)
                    if key not in removed:
                        removed.append(key)
            for folder in (path.parent, path.parent.parent):  # hour=, then date= once empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
        return removed

    def append_event(self, name: str, frame: pl.DataFrame) -> Path:
        """Append one event file; events are never rewritten (the newest event is the state)."""
        table = self.table(name)
        if table.layout != "events":
            raise ValueError(f"{name} is not an event table")
        frame = schemas.conform(frame, table.schema, name)
        stamp = time.time_ns()
        path = self.table_dir(name) / f"{stamp:020d}-{uuid.uuid4().hex[:8]}.parquet"
        self._write_atomic(path, frame)
        return path

    @contextlib.contextmanager
    def partition_lock(self, name: str, key: str | None = None) -> Iterator[None]:
        """Exclusive lock for a read-modify-write of one partition (e.g. appending live rounds).

        The storage's lock (`locks.py`): a file lock on one machine, a PostgreSQL advisory lock
        across machines; writers of different partitions never wait on each other.
        """
        with self.storage.lock(name, key):
            yield
