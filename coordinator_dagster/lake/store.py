"""The Parquet lake: where every table lives, atomic partition writes, reads, DuckDB views.

Layout under `<home>/lake/<table>/`: hourly tables in hive folders
(`date=2026-11-25/hour=10/data.parquet`, so a time filter prunes whole folders), period tables
as `period=<key>/data.parquet`, single tables as `data.parquet`, and append-only event tables
as one file per event. A write goes to a dot-named temporary file in the same folder and is
renamed into place, so a reader sees the old or the new partition, never half of one.

Nothing here holds a DuckDB file lock while it works: readers query Parquet through in-memory
DuckDB connections. The catalog file (`coordinator.duckdb`) only stores the same views for
operators' own DuckDB clients, and is refreshed opportunistically.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.durable import replace_durably
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT, window_keys_between

if TYPE_CHECKING:
    from coordinator_dagster.contracts import CrunchContract

log = logging.getLogger(__name__)

DATA_FILE = "data.parquet"


@dataclass(frozen=True)
class Table:
    name: str
    layout: str  # "window" (hourly), "period", "single" or "events"
    schema: pl.Schema
    # Versioned tables keep one folder per scoring version (`version=<v>/...`), so re-scoring with
    # a new version leaves the old one queryable until the operator prunes it.
    versioned: bool = False


VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_SCORING_VERSION = "v1"


def lake_tables(window_names: Iterable[str]) -> dict[str, Table]:
    tables = [
        Table("feed_records", "window", schemas.FEED_RECORDS),
        Table("inputs", "window", schemas.INPUTS),
        Table("predictions", "window", schemas.PREDICTIONS),
        Table("ensemble_predictions", "window", schemas.PREDICTIONS, versioned=True),
        Table("scores", "window", schemas.SCORES, versioned=True),
        Table("snapshots", "window", schemas.SNAPSHOTS, versioned=True),
        Table("leaderboard", "single", schemas.leaderboard_schema(window_names)),
        # The leaderboard as of each hour (the newest build of that hour), for per-model history.
        Table("leaderboard_history", "window", schemas.leaderboard_schema(window_names)),
        Table("checkpoints", "period", schemas.CHECKPOINTS),
        Table("checkpoint_events", "events", schemas.CHECKPOINT_EVENTS),
        Table("models", "single", schemas.MODELS),
    ]
    return {t.name: t for t in tables}


_DUCKDB_TYPES = {
    pl.String: "VARCHAR",
    pl.Float64: "DOUBLE",
    pl.Int64: "BIGINT",
    pl.Boolean: "BOOLEAN",
}


def _duckdb_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if isinstance(dtype, pl.List):
        return _duckdb_type(dtype.inner) + "[]"
    return _DUCKDB_TYPES[dtype.base_type()]


class Lake:
    def __init__(
        self,
        home: str | os.PathLike[str],
        window_names: Iterable[str] = ("score_recent", "score_steady", "score_anchor"),
        scoring_version: str = DEFAULT_SCORING_VERSION,
    ):
        if not VERSION_PATTERN.match(scoring_version):
            raise ValueError(f"scoring version {scoring_version!r} must be letters, digits, '_', '.' or '-' (at most 64)")
        self.home = Path(home).expanduser().resolve()
        self.root = self.home / "lake"
        self.catalog_path = self.home / "coordinator.duckdb"
        self.window_names = tuple(window_names)
        self.scoring_version = scoring_version
        self.tables = lake_tables(self.window_names)

    @classmethod
    def for_contract(cls, home: str | os.PathLike[str], contract: "CrunchContract") -> "Lake":
        return cls(home, window_names=contract.aggregation.windows, scoring_version=contract.scoring_version)

    def with_version(self, scoring_version: str) -> "Lake":
        """The same lake, reading and writing another scoring version's scores and snapshots."""
        return Lake(self.home, self.window_names, scoring_version)

    # ---- paths ---------------------------------------------------------------------------
    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(f"unknown lake table {name!r}; tables: {sorted(self.tables)}") from None

    def table_dir(self, name: str) -> Path:
        """Where the table's files are: for versioned tables, the current version's folder."""
        table = self.table(name)
        base = self.root / table.name
        return base / f"version={self.scoring_version}" if table.versioned else base

    def versions(self, name: str) -> list[str]:
        """Scoring versions present for a versioned table."""
        base = self.root / self.table(name).name
        return sorted(p.name.split("=", 1)[1] for p in base.glob("version=*") if p.is_dir())

    def prune_version(self, scoring_version: str) -> list[Path]:
        """Delete another scoring version's scores and snapshots; the current one is refused."""
        if scoring_version == self.scoring_version:
            raise ValueError(f"{scoring_version} is the current scoring version; switch the contract first")
        removed = []
        for table in self.tables.values():
            folder = self.root / table.name / f"version={scoring_version}"
            if table.versioned and folder.is_dir():
                shutil.rmtree(folder)
                removed.append(folder)
        return removed

    def partition_path(self, name: str, key: str | None = None) -> Path:
        table = self.table(name)
        base = self.table_dir(name)
        if table.layout == "window":
            hour = dt.datetime.strptime(key or "", WINDOW_KEY_FORMAT)
            return base / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}" / DATA_FILE
        if table.layout == "period":
            dt.datetime.strptime(key or "", "%Y-%m-%d")  # validates the key
            return base / f"period={key}" / DATA_FILE
        if table.layout == "single":
            return base / DATA_FILE
        raise ValueError(f"{name} is an event table; use append_event()")

    def glob(self, name: str) -> str:
        return str(self.table_dir(name) / self._pattern(name))

    def files(self, name: str) -> list[Path]:
        return sorted(self.table_dir(name).glob(self._pattern(name)))

    def has_files(self, name: str) -> bool:
        """Cheaper than `files()`: stops at the first file."""
        return next(self.table_dir(name).glob(self._pattern(name)), None) is not None

    def _pattern(self, name: str) -> str:
        """File pattern below the table's folder, by layout."""
        return {"window": "*/*/*.parquet", "period": "*/*.parquet", "single": "*.parquet", "events": "*.parquet"}[self.table(name).layout]

    # ---- writes --------------------------------------------------------------------------
    def _write_atomic(self, path: Path, frame: pl.DataFrame) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name starts with a dot and does not end in .parquet: no glob sees it.
        tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            frame.write_parquet(tmp, compression="zstd", statistics=True)
            replace_durably(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def write(self, name: str, frame: pl.DataFrame, key: str | None = None) -> Path:
        """Replace one partition (or a single table) with `frame`, conformed to the table schema."""
        table = self.table(name)
        frame = schemas.conform(frame, table.schema, name)
        path = self.partition_path(name, key)
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

        An advisory file lock: it serializes writers of one partition on one machine; writers of
        different partitions never wait on each other.
        """
        lock_dir = self.root / ".locks" / name
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock_path = lock_dir / f"{(key or 'all').replace(':', '')}.lock"
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # ---- reads ---------------------------------------------------------------------------
    def exists(self, name: str, key: str | None = None) -> bool:
        return self.partition_path(name, key).exists()

    def read_paths(self, name: str, paths: Iterable[Path]) -> pl.DataFrame:
        schema = self.table(name).schema
        frames = []
        for path in paths:
            # Each file is read through one open handle: given a path, polars opens it more than
            # once, and a writer renaming a new version into place in between makes it mix the
            # two files (a page-size error or a panic). An open handle keeps the old inode.
            try:
                with open(path, "rb") as handle:
                    frames.append(pl.read_parquet(handle))
            except FileNotFoundError:
                continue
        if not frames:
            return schemas.empty(schema)
        # One contiguous chunk: polars' grouped float aggregations over many chunks can sum in a
        # different order from run to run, and re-scoring must give byte-identical partitions.
        frame = pl.concat(frames, how="vertical_relaxed").rechunk() if len(frames) > 1 else frames[0].rechunk()
        return schemas.conform(frame, schema, name)

    def read(self, name: str, key: str | None = None) -> pl.DataFrame:
        """One partition (or the single table); an empty frame with the schema if absent."""
        return self.read_paths(name, [self.partition_path(name, key)])

    def read_window(self, name: str, start: dt.datetime, end: dt.datetime, column: str | None = None) -> pl.DataFrame:
        """Rows of an hourly table from the hour partitions overlapping [start, end).

        With `column`, rows are also filtered to `start <= column < end`.
        """
        paths = [self.partition_path(name, key) for key in window_keys_between(start, end)]
        frame = self.read_paths(name, paths)
        if column is not None:
            frame = frame.filter((pl.col(column) >= start) & (pl.col(column) < end))
        return frame

    def read_all(self, name: str) -> pl.DataFrame:
        return self.read_paths(name, self.files(name))

    # ---- DuckDB ----------------------------------------------------------------------------
    def _source_sql(self, name: str, absolute: bool = True) -> str:
        table = self.table(name)
        if not self.has_files(name):
            columns = ", ".join(
                f'CAST(NULL AS {_duckdb_type(dtype)}) AS "{col}"' for col, dtype in table.schema.items()
            )
            return f"SELECT {columns} WHERE false"
        hive = "true" if table.layout in ("window", "period") else "false"
        # No union_by_name: every file of a table is written with the table's schema, and
        # without it binding a view reads one file footer instead of all of them.
        return f"SELECT * FROM read_parquet('{self.glob(name)}', hive_partitioning={hive})"

    def view_statements(self) -> list[str]:
        """CREATE VIEW statements: `raw_<table>` over the files, and the public views.

        Public views derive the mutable facts instead of storing them: a prediction is SCORED
        once a score row exists, an input RESOLVED once its truth is known, a checkpoint's status
        is its newest event.
        """
        statements = [f"CREATE OR REPLACE VIEW raw_{name} AS {self._source_sql(name)}" for name in self.tables]
        # Every scoring version side by side (hive column `version`), for comparisons and audits.
        for name, table in self.tables.items():
            if table.versioned:
                pattern = str(self.root / name / "version=*" / self._pattern(name))
                source = (
                    f"SELECT * FROM read_parquet('{pattern}', hive_partitioning=true)"
                    if any(self.root.joinpath(name).glob(f"version=*/{self._pattern(name)}"))
                    else self._source_sql(name)
                )
                statements.append(f"CREATE OR REPLACE VIEW {name}_all_versions AS {source}")
        passthrough = ["feed_records", "snapshots", "leaderboard", "leaderboard_history", "models", "scores", "checkpoint_events", "ensemble_predictions"]
        statements += [f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM raw_{name}" for name in passthrough]
        statements.append(
            """CREATE OR REPLACE VIEW predictions AS
            SELECT p.* REPLACE (
                CASE WHEN p.status = 'PENDING' AND s.prediction_id IS NOT NULL THEN 'SCORED' ELSE p.status END AS status,
                COALESCE(p.failed_reason, s.failed_reason) AS failed_reason),
                s.value AS score_value, s.success AS score_success
            FROM raw_predictions p LEFT JOIN raw_scores s
                ON s.prediction_id = p.prediction_id AND s.round_ts = p.round_ts"""
        )
        statements.append(
            """CREATE OR REPLACE VIEW inputs AS
            SELECT i.*, CASE WHEN r.input_id IS NULL THEN 'RECEIVED' ELSE 'RESOLVED' END AS status
            FROM raw_inputs i LEFT JOIN (
                SELECT DISTINCT input_id FROM raw_scores WHERE entry_price IS NOT NULL) r USING (input_id)"""
        )
        statements.append(
            """CREATE OR REPLACE VIEW checkpoints AS
            SELECT c.* REPLACE (COALESCE(e.status, c.status) AS status), e.tx_hash, e.event_at AS status_changed_at
            FROM raw_checkpoints c LEFT JOIN (
                SELECT * FROM raw_checkpoint_events
                QUALIFY row_number() OVER (PARTITION BY checkpoint_id ORDER BY event_at DESC) = 1) e
            USING (checkpoint_id)"""
        )
        return statements

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with every view; holds no lock on anything."""
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        for statement in self.view_statements():
            con.execute(statement)
        return con

    def reader(self) -> "LakeReader":
        return LakeReader(self)

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        con = self.connect()
        try:
            return con.execute(sql, params or []).pl()
        finally:
            con.close()

    def refresh_catalog(self) -> bool:
        """Rewrite the operator-facing catalog's views; False if someone holds the file.

        Views over a glob stay valid as files come and go, so this only matters when a table
        gains its first file; callers skip it otherwise (see `catalog_is_current`).
        """
        self.home.mkdir(parents=True, exist_ok=True)
        state = {name: bool(self.files(name)) for name in self.tables}
        with self.partition_lock("catalog"):
            try:
                con = duckdb.connect(str(self.catalog_path))
            except duckdb.Error as exc:  # an operator's client holds it: not our run's problem
                log.warning("catalog %s not refreshed: %s", self.catalog_path, exc)
                return False
            try:
                con.execute("SET TimeZone = 'UTC'")
                for statement in self.view_statements():
                    con.execute(statement)
            finally:
                con.close()
            (self.home / "catalog.json").write_text(json.dumps(state, sort_keys=True))
        return True

    def catalog_is_current(self) -> bool:
        try:
            recorded = json.loads((self.home / "catalog.json").read_text())
        except (OSError, ValueError):
            return False
        return recorded == {name: bool(self.files(name)) for name in self.tables}

    def ensure_catalog(self) -> None:
        if not self.catalog_is_current():
            self.refresh_catalog()


# Errors that say something about the query, not about a file changing under it.
_DETERMINISTIC = (duckdb.BinderException, duckdb.ParserException, duckdb.CatalogException, duckdb.ConversionException)
READ_ATTEMPTS = 5


def fetch_with_retry(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
    """Run a read query and fetch it all, retrying when a partition was replaced mid-query.

    A partition swapped by rename while DuckDB scans it can make the scan read the new file's
    bytes at the old file's offsets; DuckDB then fails the query (it does not return mixed
    rows). Such a read is simply run again; the rename is atomic, so the retry sees one version.
    """
    for attempt in range(READ_ATTEMPTS):
        try:
            cursor = con.execute(sql, params or [])
            return [d[0] for d in cursor.description], cursor.fetchall()
        except _DETERMINISTIC:
            raise
        except duckdb.Error:
            if attempt == READ_ATTEMPTS - 1:
                raise
            time.sleep(0.002 * 2**attempt)
    raise AssertionError("unreachable")


class LakeReader:
    """One shared in-memory DuckDB for a long-lived reader (the API), handing out cursors.

    Opening a connection and binding a dozen views costs tens of milliseconds; a cursor on a
    shared connection costs microseconds. Views
    over a table that had no files are typed stubs, so the views are rebuilt once such a table
    gains its first file. Nothing here locks the lake: writers never wait for readers.
    """

    def __init__(self, lake: Lake):
        self.lake = lake
        self._lock = threading.Lock()
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        # Partitions are replaced by rename, possibly several times within the file system's
        # timestamp granularity. DuckDB's file caches key on path and modification time, so a
        # cached block or footer could belong to a file that was replaced: keep them off.
        self._con.execute("SET enable_external_file_cache = false")
        self._con.execute("SET parquet_metadata_cache = false")
        self._empty: set[str] = set()
        self._rebuild()

    def _rebuild(self) -> None:
        empty = {name for name in self.lake.tables if not self.lake.has_files(name)}
        for statement in self.lake.view_statements():
            self._con.execute(statement)
        self._empty = empty

    def cursor(self) -> duckdb.DuckDBPyConnection:
        if any(self.lake.has_files(name) for name in self._empty):
            with self._lock:
                if any(self.lake.has_files(name) for name in self._empty):
                    self._rebuild()
        cursor = self._con.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        return cursor

    def close(self) -> None:
        self._con.close()
