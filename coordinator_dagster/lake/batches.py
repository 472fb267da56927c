"""Reading and writing many hour partitions of one table at once (a backfill range, a scoring
micro-batch): the same files and guarantees as `reads.py` and `writes.py`, at a cost per file
far below theirs.

Reads open every file first and decode them all in one call through the names Linux gives
open files (so a partition renamed into place mid-read gives the old or the new file, never a
mix), reading only the columns asked for. Writes sort a range once into its files' row order and
put every partition's temporary file down in a few threads, each flushed and renamed into place
as `LakeWrites.write` does, so a crash leaves every partition old or new.
`SnapshotFiles` keeps the frames of files it has read and re-reads a file only once its identity
(inode, size, modification time) changed: the leaderboard and checkpoint of a long-lived scoring
loop then read only the hours that changed.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.segments import segment_names
from coordinator_dagster.lake.writes import SORT_COLUMNS
from coordinator_dagster.windows import WINDOW_KEY_FORMAT, window_keys_between, window_start

if TYPE_CHECKING:
    from coordinator_dagster.lake.store import Lake

# fsync dominates a small partition's write (about 3 of its 4 ms here); flushes of different
# files overlap well in a few threads, so a range of partitions is written at about a third of
# the cost of one after the other.
WRITE_THREADS = 8
# Files open at once while a range is decoded (well under the usual limit of 1,024 descriptors).
FILES_PER_DECODE = 256
_PROC_FD = Path("/proc/self/fd")
# Hours sorted into file order at once by a batched write (a week).
HOURS_PER_SORT = 168
HOUR = dt.timedelta(hours=1)
HOUR_US = 3_600_000_000


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
    if _PROC_FD.is_dir():
        frames = [_decode(sources, wanted, schema, name) for sources in _pinned(paths)]
    else:
        frames = [_decode([data for data in map(_read_bytes, paths) if data is not None], wanted, schema, name)]
    frames = [frame for frame in frames if frame is not None]
    if not frames:
        return schemas.empty(wanted)
    frame = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    # One contiguous chunk, as `read_paths` gives: grouped float sums must not depend on chunking.
    return schemas.conform(frame.rechunk(), wanted, name)


def _pinned(paths: list[Path]) -> Iterator[list[str]]:
    """The files of `paths` that exist, opened, as `/proc/self/fd/N` names, in groups of at most
    FILES_PER_DECODE; each group's files stay open while the caller decodes it.

    Why names of open files: polars opens a named file more than once, so a partition renamed
    into place between two opens would mix two files, which is why `read_paths` hands it an open
    handle. Linux's name for an open descriptor reopens that descriptor's inode however often it
    is opened, so a reader sees the old file whole; and given names (not bytes) polars reads only
    the column chunks asked for, in parallel, instead of every file's bytes copied into memory."""
    for first in range(0, len(paths), FILES_PER_DECODE):
        fds = []
        try:
            for path in paths[first : first + FILES_PER_DECODE]:
                try:
                    fds.append(os.open(path, os.O_RDONLY))
                except FileNotFoundError:
                    continue
            yield [f"{_PROC_FD}/{fd}" for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)


def _decode(sources: list[Any], wanted: pl.Schema, schema: pl.Schema, name: str) -> pl.DataFrame | None:
    """The `wanted` columns of every source (file bytes or names) in one decode; None if none."""
    if not sources:
        return None
    try:
        # One decode over every file: a third of the cost of decoding them one by one.
        return schemas.upgrade(pl.read_parquet(sources, columns=list(wanted.names())), schema, name).select(wanted.names())
    except pl.exceptions.PolarsError:
        # Files from before a column was added differ in schema: each is upgraded on its own.
        frames = [
            schemas.upgrade(pl.read_parquet(io.BytesIO(s) if isinstance(s, bytes) else s), schema, name).select(wanted.names())
            for s in sources
        ]
        return pl.concat(frames, how="vertical_relaxed")


def write_window_frames(lake: "Lake", name: str, frame: pl.DataFrame, column: str, keys: Iterable[str]) -> int:
    """`LakeWrites.write_windows` (every key written, empty ones too; rows outside `keys`
    refused) with the partitions written in a few threads."""
    table = lake.table(name)
    keyed = schemas.conform(frame, table.schema, name).with_columns(pl.col(column).dt.truncate("1h").alias("__hour"))
    keys = list(keys)
    present = keyed.select(pl.col("__hour").unique().dt.strftime(WINDOW_KEY_FORMAT)).to_series().to_list()
    stray = sorted(set(present) - set(keys), key=str)
    if stray:
        raise ValueError(f"{name}: rows outside the partitions being written: {stray[:3]}")
    empty = keyed.drop("__hour").clear()
    parts: dict[str, pl.DataFrame] = {}

    def put(key: str) -> None:
        # The one writer of a partition: same file layout, and committed through the lake's
        # storage (a rename on disk, a versioned object plus pointer on object storage).
        lake._write_stored_order(lake.partition_path(name, key), parts.get(key, empty))

    with ThreadPoolExecutor(max(1, min(WRITE_THREADS, len(keys)))) as pool:
        # A chunk of hours at a time: the sorted copy of a long range (a year of scores) would
        # otherwise double the range's memory.
        for first in range(0, len(keys), HOURS_PER_SORT):
            chunk = keys[first : first + HOURS_PER_SORT]
            rows = keyed if len(chunk) == len(keys) else keyed.filter(pl.col("__hour").is_in([window_start(k) for k in chunk]))
            parts = _in_file_order(rows, column)
            if len(chunk) == 1:
                put(chunk[0])
            else:
                list(pool.map(put, chunk))
    return len(keys)


def _in_file_order(keyed: pl.DataFrame, column: str) -> dict[str, pl.DataFrame]:
    """Each hour's rows of `keyed` (hours in `__hour`) as its file stores them (sorted stably by
    SORT_COLUMNS, as `_write_atomic` sorts): one stable sort of the whole frame by hour and those
    columns, then one zero-copy slice per hour, instead of a gather and a sort per hour."""
    if keyed.is_empty():
        return {}
    if not all(c in keyed.columns for c in SORT_COLUMNS):
        ordered = keyed.sort("__hour", maintain_order=True)
    else:
        ordered = _sort_by_hour_model_round(keyed, column)
    runs = ordered["__hour"].rle()
    frame = ordered.drop("__hour")
    parts, offset = {}, 0
    hours = runs.struct.field("value").dt.strftime(WINDOW_KEY_FORMAT).to_list()
    for key, length in zip(hours, runs.struct.field("len").to_list(), strict=True):
        parts[key] = frame.slice(offset, length)
        offset += length
    return parts


def _sort_by_hour_model_round(keyed: pl.DataFrame, column: str) -> pl.DataFrame:
    models = keyed["model_id"].unique().sort()
    hours = keyed["__hour"]
    span = 0 if hours.null_count() else (hours.max() - hours.min()) // HOUR + 1
    if column != "round_ts" or keyed.select(pl.col(SORT_COLUMNS).null_count()).sum_horizontal()[0] or span * models.len() * HOUR_US >= 2**63:
        return keyed.sort(["__hour", *SORT_COLUMNS], maintain_order=True)
    # (hour, model, round) as one unsigned integer in the same order: a stable sort on one
    # numeric column costs half of one on three columns of which one is a string.
    model = pl.col("model_id").replace_strict(models, pl.int_range(models.len(), eager=True), return_dtype=pl.UInt64)
    within = (pl.col("round_ts") - pl.col("__hour")).dt.total_microseconds().cast(pl.UInt64)
    hour_index = ((pl.col("__hour") - hours.min()).dt.total_hours()).cast(pl.UInt64)
    return keyed.sort((hour_index * models.len() + model) * HOUR_US + within, maintain_order=True)


def file_identity(path: Path) -> tuple[int, int, int] | None:
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
            identity = file_identity(path)
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

    def version(self, start: dt.datetime, end: dt.datetime) -> tuple[tuple[str, tuple[int, int, int]], ...]:
        """Which file of each hour of the window is there now (name and identity): equal
        versions mean nothing in the window changed."""
        return self.derived_many(start, end, "", {})[0]

    def derived(self, start: dt.datetime, end: dt.datetime, column: str, label: str, fn: Callable[[pl.DataFrame], Any]) -> list[Any]:
        """`fn` of each hour file's rows with `start <= column < end`, oldest hour first; kept per
        file under `label` until the file changes."""
        return self.derived_many(start, end, column, {label: fn})[1][label]

    def derived_many(
        self, start: dt.datetime, end: dt.datetime, column: str, fns: dict[str, Callable[[pl.DataFrame], Any]]
    ) -> tuple[tuple[tuple[str, tuple[int, int, int]], ...], dict[str, list[Any]]]:
        """`version` and `derived` for several labels, with one look at the files."""
        out: dict[str, list[Any]] = {label: [] for label in fns}
        version = []
        for path, frame, memo in self._current(start, end):
            version.append((str(path), self._files[path][0]))
            rows = None
            for label, fn in fns.items():
                if label not in memo:
                    if rows is None:
                        rows = schemas.conform(frame, self.schema, self.name).filter((pl.col(column) >= start) & (pl.col(column) < end))
                    memo[label] = fn(rows)
                out[label].append(memo[label])
        return tuple(version), out
