"""The small lake tables held in memory by a long-lived reader (the report API), and the file
identities that say when a copy is out of date.

The leaderboard, the model registry, the checkpoints and their events are a few files of at most
a few thousand rows that every dashboard page reads; scanning their Parquet files on every
request costs milliseconds of the request's budget. `MemoryTables` loads each into a table of
the reader's in-memory DuckDB and points the table's `raw_<name>` view at it, so every view and
query over them stays as it is. Before a cursor is handed out the files' identities (inode,
size, mtime, ctime: one `stat` per file; an event table's folder listing) are compared with the
ones loaded: a partition replaced by a run or a new checkpoint event is read again before the
next query, so an answer is never older than the files and the API reads its own writes.

Each load creates a table under a new generation-numbered name, then repoints the view: a query
already running keeps the table it bound (DuckDB's MVCC) and no writer ever waits for a reader.
Hourly tables (predictions, scores, snapshots) stay on their files: they grow without bound.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import duckdb

from coordinator_dagster.lake.layout import scan_event_files, scan_period_files, scan_window_folders

if TYPE_CHECKING:
    from coordinator_dagster.lake.views import LakeViews

SMALL_TABLES = ("leaderboard", "models", "checkpoints", "checkpoint_events")
LOAD_ATTEMPTS = 5


def stat_identity(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def table_identity(lake: LakeViews, name: str) -> tuple:
    """Identities of every file of a table, in a stable order; os.scandir, not glob (~5× cheaper)."""
    base = lake.table_dir(name)
    layout = lake.table(name).layout
    if layout == "window":
        return tuple((f.path, stat_identity(f.path)) for f in scan_window_folders(base))
    if layout == "period":
        return tuple((path, stat_identity(path)) for path in scan_period_files(base))
    if layout == "single":
        path = str(lake.partition_path(name))
        return ((path, stat_identity(path)),)
    names = scan_event_files(base)  # events: files are only ever added
    return ((len(names), names[-1] if names else None),)


class MemoryTables:
    """In-memory copies of `names` in `con`'s database. Not thread-safe by itself: the owner
    (`LakeReader`) calls `stale()` freely and `load()` under its lock."""

    def __init__(self, lake: LakeViews, con: duckdb.DuckDBPyConnection, names: tuple[str, ...] = SMALL_TABLES):
        self.lake = lake
        self.con = con
        self.names = tuple(n for n in names if n in lake.tables)
        self._loaded: dict[str, tuple[tuple, str]] = {}  # name -> (identity, table holding it)
        self._generation = 0

    def stale(self) -> list[str]:
        return [name for name in self.names if name not in self._loaded or self._loaded[name][0] != table_identity(self.lake, name)]

    def load(self, name: str) -> None:
        """Read the table's files into a new table and point `raw_<name>` at it."""
        identity = table_identity(self.lake, name)  # taken first: a change mid-load reloads next time
        if name in self._loaded and self._loaded[name][0] == identity:
            return
        self._generation += 1
        table = f"memory_{name}_{self._generation}"
        for attempt in range(LOAD_ATTEMPTS):
            try:
                self.con.execute(f"CREATE TABLE {table} AS {self.lake._source_sql(name)}")
                break
            except (duckdb.BinderException, duckdb.ParserException, duckdb.CatalogException):
                raise
            except duckdb.Error:
                # A partition replaced mid-read (see reader.fetch_with_retry); the rename is atomic.
                self.con.execute(f"DROP TABLE IF EXISTS {table}")
                if attempt == LOAD_ATTEMPTS - 1:
                    raise
                time.sleep(0.002 * 2**attempt)
        self.con.execute(f"CREATE OR REPLACE VIEW raw_{name} AS SELECT * FROM {table}")
        previous = self._loaded.get(name)
        self._loaded[name] = (identity, table)
        if previous is not None:
            self.con.execute(f"DROP TABLE IF EXISTS {previous[1]}")

    def repoint(self) -> None:
        """After the lake's views were recreated over the files: back to the loaded copies."""
        for name, (_, table) in self._loaded.items():
            self.con.execute(f"CREATE OR REPLACE VIEW raw_{name} AS SELECT * FROM {table}")
