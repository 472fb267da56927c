"""Reading and writing many hour partitions of one table at once (a backfill range, a scoring
micro-batch): the same files and guarantees as `reads.py` and `writes.py`, at a cost per file
far below theirs.

Reads take each file's bytes through one open handle (so a partition renamed into place
mid-read gives the old or the new file, never a mix) and decode them all in one call, optionally
only some columns. Writes put every partition's temporary file down in a few threads, each flushed
and renamed into place as `LakeWrites.write` does, so a crash leaves every partition old or new.
`SnapshotFiles` keeps the frames of files it has read and re-reads a file only once its identity
(inode, size, modification time) changed: the leaderboard and checkpoint of a long-lived scoring
loop then read only the hours that changed.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.segments import segment_names
from coordinator_dagster.windows import WINDOW_KEY_FORMAT, window_keys_between

if TYPE_CHECKING:
    from coordinator_dagster.lake.store import Lake

# fsync dominates a small partition's write (about 3 of its 4 ms here); flushes of different
# files overlap well in a few threads, so a range of partitions is written at about a third of
# the cost of one after the other.
WRITE_THREADS = 8


def _read_bytes(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read_window_files(
    lake: "Lake", name: str, start: dt.datetime, end: dt.datetime, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """The rows of the hour partitions of `name` overlapping [start, end), as `read_window`
    gives them (same rows, same order, conformed to the table's schema), or only `columns`."""
    paths = [lake.partition_path(name, key) for key in window_keys_between(start, end)]
    if lake.storage.segments and any(segment_names(path.parent) for path in paths):
        # An hour the round engine is appending to is read from its segments (never a mix), as
        # `read` reads it; the one-decode path reads `data.parquet` files only.
        frame = lake.read_window(name, start, end)
        return frame if columns is None else frame.select(columns)
    return read_files(lake, name, paths, columns)


def read_files(lake: "Lake", name: str, paths: Iterable[Path], columns: Sequence[str] | None = None) -> pl.DataFrame:
    paths = list(paths)
    # On object storage this host's copy is brought up to date first, as `read` does.
    lake.storage.sync_files(paths)
    schema = lake.table(name).schema
    wanted = pl.Schema({c: schema[c] for c in columns}) if columns is not None else schema
    datas = [data for data in map(_read_bytes, paths) if data is not None]
    if not datas:
        return schemas.empty(wanted)
    try:
        # One decode over every file's bytes: a third of the cost of decoding them one by one.
        frame = schemas.upgrade(pl.read_parquet(datas, columns=list(wanted.names())), schema, name).select(wanted.names())
    except pl.exceptions.PolarsError:
        # Files from before a column was added differ in schema: each is upgraded on its own.
        frames = [schemas.upgrade(pl.read_parquet(io.BytesIO(data)), schema, name).select(wanted.names()) for data in datas]
        frame = pl.concat(frames, how="vertical_relaxed")
    # One contiguous chunk, as `read_paths` gives: grouped float sums must not depend on chunking.
    return schemas.conform(frame.rechunk(), wanted, name)


def write_window_frames(lake: "Lake", name: str, frame: pl.DataFrame, column: str, keys: Iterable[str]) -> int:
    """`LakeWrites.write_windows` (every key written, empty ones too; rows outside `keys`
    refused) with the partitions written in a few threads."""
    table = lake.table(name)
    frame = schemas.conform(frame, table.schema, name)
    hour = pl.col(column).dt.truncate("1h").dt.strftime(WINDOW_KEY_FORMAT)
    parts = {k[0]: p.drop("__key") for k, p in frame.with_columns(hour.alias("__key")).group_by("__key", maintain_order=True)}
    keys = list(keys)
    stray = sorted(set(parts) - set(keys))
    if stray:
        raise ValueError(f"{name}: rows outside the partitions being written: {stray[:3]}")
    empty = frame.clear()

    def put(key: str) -> None:
        # The one writer of a partition: same file layout, and committed through the lake's
        # storage (a rename on disk, a versioned object plus pointer on object storage).
        lake._write_atomic(lake.partition_path(name, key), parts.get(key, empty))

    if len(keys) == 1:
        put(keys[0])
    else:
        with ThreadPoolExecutor(min(WRITE_THREADS, len(keys))) as pool:
            list(pool.map(put, keys))
    return len(keys)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class SnapshotFiles:
    """A window table's hour files as frames, kept between reads and re-read only when a file
    changed: `read_window` returns exactly what `Lake.read_window` would (same rows and order).

    `derived` keeps, per file, what a function made of its frame (a cycle's Merkle leaves, say),
    recomputed only when that file changed. Files outside the last window asked for are dropped,
    so memory follows the window, not the table's age.
    """

    def __init__(self, lake: "Lake", name: str = "snapshots"):
        self.lake = lake
        self.name = name
        self.schema = lake.table(name).schema
        self._paths: dict[str, Path] = {}
        # path -> (identity, frame, {label: derived value})
        self._files: dict[Path, tuple[tuple[int, int, int], pl.DataFrame, dict[str, Any]]] = {}
        self.reads = 0  # files decoded so far (the rest came from memory)

    def _path(self, key: str) -> Path:
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = self.lake.partition_path(self.name, key)
        return path

    def _current(self, start: dt.datetime, end: dt.datetime) -> list[tuple[Path, pl.DataFrame, dict[str, Any]]]:
        found = []
        paths = [self._path(key) for key in window_keys_between(start, end)]
        self.lake.storage.sync_files(paths)  # object storage: another host may have written them
        for path in paths:
            identity = _identity(path)
            if identity is None:
                continue
            kept = self._files.get(path)
            if kept is None or kept[0] != identity:
                data = _read_bytes(path)
                if data is None:
                    continue
                self.reads += 1
                # Identity taken before the read: a file replaced meanwhile is read again next time.
                kept = (identity, schemas.upgrade(pl.read_parquet(io.BytesIO(data)), self.schema, self.name), {})
                self._files[path] = kept
            found.append((path, kept[1], kept[2]))
        wanted = set(paths)
        for stale in [p for p in self._files if p not in wanted]:
            del self._files[stale]
        return found

    def read_window(self, start: dt.datetime, end: dt.datetime, column: str | None = None) -> pl.DataFrame:
        frames = [frame for _, frame, _ in self._current(start, end)]
        if not frames:
            return schemas.empty(self.schema)
        frame = schemas.conform(pl.concat(frames, how="vertical_relaxed").rechunk(), self.schema, self.name)
        if column is not None:
            frame = frame.filter((pl.col(column) >= start) & (pl.col(column) < end))
        return frame

    def derived(self, start: dt.datetime, end: dt.datetime, column: str, label: str, fn: Callable[[pl.DataFrame], Any]) -> list[Any]:
        """`fn` of each hour file's rows with `start <= column < end`, oldest hour first; kept per
        file under `label` until the file changes."""
        out = []
        for _, frame, memo in self._current(start, end):
            if label not in memo:
                rows = schemas.conform(frame, self.schema, self.name).filter((pl.col(column) >= start) & (pl.col(column) < end))
                memo[label] = fn(rows)
            out.append(memo[label])
        return out
