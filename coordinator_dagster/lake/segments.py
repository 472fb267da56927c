"""Hour partitions that grow by small files: appending a round's rows costs one small file, not a
rewrite of the hour, and the hour's files are compacted into one when it closes.

An hour folder holds either the single `data.parquet` (compacted, or written whole) or only
segment files (`seg-<ns>-<id>.parquet`), never both:

- `append_segment` puts one segment file in place by rename (a reader sees all of it or none);
  an hour that held `data.parquet` first has it renamed to a segment (same rows, same folder).
- `compact` writes the hour's rows as `data.parquet` into a staging folder outside every table
  (`<lake>/.staging/`; DuckDB's globs match dot-folders inside a table) and swaps the two folders
  in one step (`renameat2(RENAME_EXCHANGE)`), then deletes the old one. `replace_hour` does the
  same with a frame of the caller's (a whole-hour write of an hour that has segments).

Why readers never see both or half: a listing is of one folder (the old one or the new one), and
the names in a listing of segments never exist in a compacted folder, so a file opened after the
swap is missing (the read fails and is retried: `read_hour` here, `fetch_with_retry` for DuckDB)
rather than from the other version. `read_hour` reads through a descriptor of the folder itself,
so its files come from one version. Writers hold the partition lock (`Lake.partition_lock`).
Linux only (renameat2); other systems keep whole-partition writes.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import time
import uuid
from pathlib import Path

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.durable import fsync_dir, replace_durably
from coordinator_dagster.lake.layout import DATA_FILE

SEGMENT_PREFIX = "seg-"
STAGING = ".staging"
READ_ATTEMPTS = 20
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders atomically."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"cannot swap {a} and {b}: {os.strerror(errno)}")


def segment_names(folder: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(folder) if n.startswith(SEGMENT_PREFIX) and n.endswith(".parquet"))
    except FileNotFoundError:
        return []


def _write_file(folder: Path, name: str, frame: pl.DataFrame) -> None:
    tmp = folder / f".{name}.{uuid.uuid4().hex}.tmp"  # no glob matches it
    try:
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        replace_durably(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)


def append_segment(data_path: Path, frame: pl.DataFrame, schema: pl.Schema, table: str) -> Path:
    """Add `frame` to the hour whose whole-partition file is `data_path`, as one segment file.
    The caller holds the partition lock."""
    folder = data_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    if data_path.exists():
        os.rename(data_path, folder / f"{SEGMENT_PREFIX}{0:020d}-base.parquet")  # sorts first
    name = f"{SEGMENT_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
    _write_file(folder, name, schemas.conform(frame, schema, table))
    return folder / name


def read_hour(data_path: Path, schema: pl.Schema, table: str) -> pl.DataFrame:
    """The hour's rows, from `data.parquet` or from its segments, all from one version of the
    folder (read through a descriptor of it; a file deleted under the read starts it again)."""
    folder = data_path.parent
    for _ in range(READ_ATTEMPTS):
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return schemas.empty(schema)
        try:
            names = sorted(n for n in os.listdir(fd) if n.endswith(".parquet") and not n.startswith("."))
            frames = []
            for name in names:
                with os.fdopen(os.open(name, os.O_RDONLY, dir_fd=fd), "rb") as handle:
                    frames.append(schemas.upgrade(pl.read_parquet(handle), schema, table))
            # The folder read must still be the hour's folder: once swapped out by a compaction
            # it is emptied file by file, and a listing taken then would miss rows that exist.
            live = os.stat(folder)
            held = os.fstat(fd)
            if (live.st_ino, live.st_dev) != (held.st_ino, held.st_dev):
                continue
        except FileNotFoundError:
            continue  # compacted (or replaced) under the read: read the new version
        finally:
            os.close(fd)
        if not frames:
            return schemas.empty(schema)
        return schemas.conform(pl.concat(frames, how="vertical_relaxed").rechunk(), schema, table)
    raise OSError(f"{folder}: changed under every one of {READ_ATTEMPTS} reads")


def replace_hour(lake_root: Path, data_path: Path, frame: pl.DataFrame) -> None:
    """Make `frame` the hour's only file, in one step for readers, whatever the folder held
    (segments or not). The caller holds the partition lock and has conformed `frame`."""
    folder = data_path.parent
    staging = lake_root / STAGING / uuid.uuid4().hex
    staging.mkdir(parents=True)
    try:
        _write_file(staging, DATA_FILE, frame)
        if folder.is_dir():
            _exchange(staging, folder)  # `staging` now names the old folder
        else:
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, folder)
        fsync_dir(folder.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def compact(lake_root: Path, data_path: Path, schema: pl.Schema, table: str, sort_by: tuple[str, ...] = ()) -> bool:
    """Merge the hour's segments into one `data.parquet` (False: no segments, nothing done).
    Idempotent; a crash leaves the old folder (segments) or the new one, and at worst a staging
    folder that `clean_staging` removes. The caller holds the partition lock."""
    if not segment_names(data_path.parent):
        return False
    frame = read_hour(data_path, schema, table)
    if sort_by:
        frame = frame.sort(*sort_by)
    replace_hour(lake_root, data_path, frame)
    return True


def clean_staging(lake_root: Path, older_than_seconds: float = 3600.0) -> None:
    """Remove staging folders a crash left behind (never seen by readers); recent ones may be
    another writer's compaction in progress."""
    base = lake_root / STAGING
    limit = time.time() - older_than_seconds
    for entry in os.scandir(base) if base.is_dir() else ():
        if entry.stat().st_mtime < limit:
            shutil.rmtree(entry.path, ignore_errors=True)
