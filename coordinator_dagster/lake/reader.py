"""The lake for a long-lived reader (the report API): one shared DuckDB connection handing out
cursors, the small tables held in memory (`memory.py`), and reads retried when a partition is
replaced under them.

Nothing here locks the lake: writers never wait for readers.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

import duckdb

from coordinator_dagster.lake.memory import SMALL_TABLES, WINDOW_RECHECK_SECONDS, Identities, MemoryTables

if TYPE_CHECKING:
    from coordinator_dagster.lake.views import LakeViews

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
    shared connection costs microseconds. Views over a table that had no files are typed stubs,
    so the views are rebuilt once such a table gains its first file; the small tables are
    reloaded into memory when their files change (both checked before each cursor is handed out).
    Nothing here locks the lake: writers never wait for readers.
    """

    def __init__(
        self, lake: LakeViews, in_memory: tuple[str, ...] = SMALL_TABLES, window_recheck: float = WINDOW_RECHECK_SECONDS, watch: bool = True
    ):
        self.lake = lake
        self._lock = threading.Lock()
        self._con = duckdb.connect(":memory:")
        # GLOBAL: every cursor inherits it (a per-cursor SET costs a statement per request).
        self._con.execute("SET GLOBAL TimeZone = 'UTC'")
        # Partitions are replaced by rename, possibly several times within the file system's
        # timestamp granularity. DuckDB's file caches key on path and modification time, so a
        # cached block or footer could belong to a file that was replaced: keep them off.
        self._con.execute("SET enable_external_file_cache = false")
        self._con.execute("SET parquet_metadata_cache = false")
        # File events say when to look at the small tables, the tables without files yet and
        # every other table but the large hourly ones (`memory.Identities`).
        watched = [n for n in lake.tables if n in in_memory or lake.table(n).layout != "window" or not lake.has_files(n)] if watch else []
        self._memory = MemoryTables(lake, self._con, in_memory, window_recheck, watched=watched)
        self._empty: dict[str, str] = {}  # tables without files -> their folder
        self._all_watched = False  # every table `_check` looks at is watched for file events
        self._quiet: tuple | None = None  # `Identities.token()` when all was last found current
        self._rebuild()
        for name in self._memory.names:
            self._memory.load(name)

    def _rebuild(self) -> None:
        empty = {name for name in self.lake.tables if name not in self._memory.names and not self.lake.has_files(name)}
        for statement in self.lake.view_statements():
            self._con.execute(statement)
        self._memory.repoint()
        self._empty = {name: str(self.lake.table_dir(name)) for name in empty}
        identities = self._memory.identities
        self._all_watched = all(identities.watches(n) for n in (*self._memory.names, *empty))
        self._quiet = None

    def _gained_files(self) -> bool:
        identities = self._memory.identities
        for name, folder in self._empty.items():
            # A table without a folder has no files: one cheap check before the glob; a watched
            # table is looked at only after an event in its folders.
            if identities.look(name) and os.path.isdir(folder) and self.lake.has_files(name):
                identities.mark(name)  # the rebuild that follows looks again
                return True
        return False

    def _check(self) -> tuple[list[str], bool]:
        """(in-memory tables out of date, whether a table without files gained some)."""
        identities = self._memory.identities
        if self._quiet is not None and identities.quiet(self._quiet):
            return [], False  # no file event since everything was last found current
        with identities.batch():
            token = identities.token() if self._all_watched else None
            stale, gained = self._memory.stale(), self._gained_files()
        self._quiet = token if not stale and not gained else None
        return stale, gained

    def refresh(self, wait: bool = True) -> None:
        """Bring the views and the in-memory tables up to the files. With `wait=False`, while
        another thread is loading a copy, return at once: the caller reads the previous copy
        (views and tables are swapped whole, so it sees one version) instead of queueing behind
        the load; during a run rewriting partitions, one thread loads each change, once."""
        stale, gained = self._check()
        if not stale and not gained:
            return
        if not self._lock.acquire(blocking=wait):
            return
        try:
            if self._gained_files():
                self._rebuild()
            for name in stale:
                self._memory.load(name)
        finally:
            self._lock.release()

    def is_current(self, names: tuple[str, ...] | None = None) -> bool:
        """Whether the in-memory tables (`names` of them, given) and the views match the files
        (one read of the file events, or a few `stat`s; no load): cheap enough for an event loop;
        `refresh()` loads. With `names`, a change to any other table does not count."""
        if names is not None:
            if self._quiet is not None and self._memory.identities.quiet(self._quiet):
                return True
            return not self._memory.stale(names)
        stale, gained = self._check()
        return not stale and not gained

    def loading(self) -> bool:
        """Whether a thread is loading changed files into memory right now."""
        return self._lock.locked()

    @property
    def identities(self) -> Identities:
        """The lake's file identities as this reader lists them (shared with the API's cache)."""
        return self._memory.identities

    def versions(self, names: tuple[str, ...]) -> tuple[int, ...]:
        """How many times each in-memory table's copy changed; -1 for a table read from files."""
        return tuple(self._memory.versions.get(name, -1) for name in names)

    def cursor(self, wait: bool = True) -> duckdb.DuckDBPyConnection:
        """A cursor over the files as they are now (`wait=False`: or over the copy being
        replaced, while another thread loads the change; see `refresh`)."""
        self.refresh(wait)
        return self._con.cursor()

    def close(self) -> None:
        self._con.close()
