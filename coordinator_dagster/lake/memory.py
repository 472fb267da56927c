"""The small lake tables held in memory by a long-lived reader (the report API), and the file
identities that say when a copy is out of date.

The leaderboard, the model registry, the checkpoints and their events are a few files of at most
a few thousand rows that every dashboard page reads; scanning their Parquet files on every
request costs milliseconds of the request's budget. Snapshots (one row per model per hour, about
440,000 rows and a few tens of MB a year for 50 models) are aggregated by the model charts over
every hour; they are held too, and kept current file by file: a replaced hour is deleted and read
again in one transaction, the other hours stay. `MemoryTables` loads each into a table of
the reader's in-memory DuckDB and points the table's `raw_<name>` view at it, so every view and
query over them stays as it is. Before a cursor is handed out the files' identities (inode,
size, mtime, ctime: one `stat` per file; an event table's folder listing) are compared with the
ones loaded: a partition replaced by a run or a new checkpoint event is read again before the
next query, so an answer is never older than the files and the API reads its own writes.

A full load creates a table under a new generation-numbered name, then repoints the view; a
file-by-file update is one transaction. Either way a query already running keeps what it bound
(DuckDB's MVCC), and no writer ever waits for a reader. Predictions and scores stay on their
files: they are millions of rows, and their pages read only the hours they need.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import duckdb

from coordinator_dagster.lake.layout import DATA_FILE, scan_event_files, scan_period_files, scan_window_files
from coordinator_dagster.lake.watch import TableWatch

if TYPE_CHECKING:
    from coordinator_dagster.lake.views import LakeViews

# late_scores: one row per answer given after its round's cutoff, an exception (the leaderboard
# shows their count and mean beside the ranking).
SMALL_TABLES = ("leaderboard", "models", "checkpoints", "checkpoint_events", "snapshots", "late_scores")
LOAD_ATTEMPTS = 5
# Listing an hourly table's folders costs about a millisecond per thousand hours, more than the
# rest of a small request: an hourly table's files are looked at again at most this often, so its
# copy may lag a rewrite by that long (as the API's response cache does). The others (a handful
# of files, and the checkpoint events the API itself writes) are checked on every use.
WINDOW_RECHECK_SECONDS = 0.02
# A watched table's files are compared at least this often whatever its events say (a network
# file system does not report other hosts' writes).
WATCHED_RECHECK_SECONDS = 1.0


def stat_identity(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def table_identity(lake: LakeViews, name: str) -> tuple:
    """Identities of every file of a table, in a stable order; os.scandir, not glob (~5× cheaper)."""
    lake.storage.sync_folder(lake.root / lake.table(name).name)  # object storage: the host's copy
    base = lake.table_dir(name)
    layout = lake.table(name).layout
    if layout == "window":
        return tuple((path, stat_identity(path)) for path in scan_window_files(base))
    if layout == "period":
        return tuple((path, stat_identity(path)) for path in scan_period_files(base))
    if layout == "single":
        path = str(lake.partition_path(name))
        return ((path, stat_identity(path)),)
    names = scan_event_files(base)  # events: files are only ever added
    return ((len(names), names[-1] if names else None),)


class Identities:
    """`table_identity` for one lake, an hourly table's re-taken at most every `recheck` seconds
    (the others on every call). One listing serves every reader of it: the in-memory tables and
    the API's response cache ask the same instance, so an hourly table is listed once per
    `recheck` in all, not once per asker.

    With `watched` tables on local disk, their file events (`lake.watch.TableWatch`) say when to
    look: such a table's identity is re-taken only after an event in its folders (exact, as the
    kernel queues the event before a writer's rename returns) or `WATCHED_RECHECK_SECONDS` after
    it was last taken (a network file system reports only this host's writes). A request then
    costs one `read` of the event queue instead of a `stat` per file."""

    def __init__(
        self,
        lake: LakeViews,
        recheck: float = WINDOW_RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        watched: Iterable[str] = (),
    ):
        self.lake = lake
        self.recheck = recheck
        self.clock = clock
        self._taken: dict[str, tuple[float, tuple]] = {}
        self._lock = threading.Lock()
        names = [n for n in watched if n in lake.tables]
        # Only where the files under the root are the lake itself (not a synced copy).
        self._watch = (
            TableWatch.create(lake.root, {n: lake.table(n).name for n in names}) if names and getattr(lake.storage, "segments", False) else None
        )
        self._watched = frozenset(n for n in names if self._watch is not None and self._watch.watches(n))
        self._dirty: set[str] = set()  # events since the identity was taken
        # An hourly table's folders with events since (None: any folder; list it all again).
        self._touched: dict[str, set[str] | None] = {}
        self._unlooked: set[str] = set(self._watched)  # events since `look()` last asked
        self._epoch: dict[str, int] = {}
        self._local = threading.local()
        self._changes = 0  # drains that found an event (or an overflow)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Within it, this thread's asks share one read of the event queue (taken on entry): a
        request asking about several tables costs one system call, not one per table."""
        if getattr(self._local, "active", False) or self._watch is None:
            yield
            return
        with self._lock:
            self._absorb()
        self._local.active = True
        try:
            yield
        finally:
            self._local.active = False

    def watches(self, name: str) -> bool:
        return name in self._watched

    def _absorb(self) -> None:
        if getattr(self._local, "active", False):
            return  # drained when the batch began
        drained = self._watch.drain()
        if drained is None:
            changed = set(self._watched)
            self._touched = dict.fromkeys(changed)
        else:
            changed = drained.keys() & self._watched
            for name in changed:
                folders = self._touched.get(name, set())
                self._touched[name] = None if folders is None or name not in self._taken else folders | drained[name]
        self._dirty |= changed
        self._unlooked |= changed
        if changed:
            self._changes += 1

    def token(self) -> tuple[int, float]:
        """Where the event queue stands (call it inside `batch()`, before looking at the files)."""
        return self._changes, self.clock()

    def quiet(self, token: tuple[int, float]) -> bool:
        """Whether no watched table had a file event since `token` was taken (and it is younger
        than `WATCHED_RECHECK_SECONDS`): then nothing looked at since has changed."""
        if self._watch is None or self.clock() - token[1] >= WATCHED_RECHECK_SECONDS:
            return False
        with self._lock:
            self._absorb()
            return self._changes == token[0]

    def __call__(self, name: str) -> tuple:
        if name in self._watched:
            return self._by_events(name)
        if self.lake.table(name).layout != "window":
            return table_identity(self.lake, name)
        now = self.clock()
        taken = self._taken.get(name)
        if taken is not None and now - taken[0] < self.recheck:
            return taken[1]
        identity = table_identity(self.lake, name)
        self._taken[name] = (now, identity)
        return identity

    def _by_events(self, name: str) -> tuple:
        now = self.clock()
        with self._lock:
            self._absorb()
            taken = self._taken.get(name)
            if taken is not None and name not in self._dirty and now - taken[0] < WATCHED_RECHECK_SECONDS:
                return taken[1]
            # Cleared before the files are looked at: an event meanwhile marks it again.
            self._dirty.discard(name)
            touched = self._touched.pop(name, None) if taken is not None and now - taken[0] < WATCHED_RECHECK_SECONDS else None
            self._touched.pop(name, None)
            epoch = self._epoch[name] = self._epoch.get(name, 0) + 1
        identity = None if touched is None else self._hours_updated(name, taken[1], touched)
        if identity is None:
            identity = table_identity(self.lake, name)
        with self._lock:
            if self._epoch[name] == epoch:  # no later look has stored a newer identity
                self._taken[name] = (now, identity)
        return identity

    def _hours_updated(self, name: str, before: tuple, folders: set[str]) -> tuple | None:
        """An hourly table's identity with only the hour folders that had events looked at again
        (a rewritten hour costs one `stat`, not a listing of every hour); None when an event was
        elsewhere (an hour or day folder added, removed or swapped): list it all."""
        if self.lake.table(name).layout != "window":
            return None
        base = os.fspath(self.lake.table_dir(name))
        files = dict(before)
        for folder in folders:
            hour, day = os.path.basename(folder), os.path.dirname(folder)
            if not hour.startswith("hour=") or os.path.dirname(day) != base or not os.path.isdir(folder):
                return None
            path = os.path.join(folder, DATA_FILE)
            files[path] = stat_identity(path)
        return tuple(sorted(files.items()))

    def look(self, name: str) -> bool:
        """Whether `name` may have changed since the last `look` at it (always, unless watched).
        A caller that finds a change it does not act on at once calls `mark(name)`."""
        if name not in self._watched:
            return True
        with self._lock:
            self._absorb()
            if name in self._unlooked:
                self._unlooked.discard(name)
                return True
            return False

    def mark(self, name: str) -> None:
        with self._lock:
            self._unlooked.add(name)

    def forget(self, name: str | None = None) -> None:
        """List `name` (every table, without one) afresh at its next ask."""
        with self._lock:
            if name is None:
                self._taken.clear()
                self._dirty |= self._watched
            else:
                self._taken.pop(name, None)
                self._dirty.add(name)
                self._epoch[name] = self._epoch.get(name, 0) + 1


def _read_files(paths: list[str]) -> str:
    """SQL reading exactly these hourly files, with their hive columns (as the lake's glob view
    has them) and each row's file name."""
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return f"SELECT * FROM read_parquet([{listed}], hive_partitioning=true, filename=true)"


class MemoryTables:
    """In-memory copies of `names` in `con`'s database. Not thread-safe by itself: the owner
    (`LakeReader`) calls `stale()` freely and `load()` under its lock."""

    def __init__(
        self,
        lake: LakeViews,
        con: duckdb.DuckDBPyConnection,
        names: tuple[str, ...] = SMALL_TABLES,
        window_recheck: float = WINDOW_RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        watched: Iterable[str] = (),
    ):
        self.lake = lake
        self.con = con
        self.names = tuple(n for n in names if n in lake.tables)
        self.window_recheck = window_recheck
        self.clock = clock
        # Through `self.clock` (which a test may replace): one clock for both.
        self.identities = Identities(lake, window_recheck, lambda: self.clock(), watched)
        self._loaded: dict[str, tuple[tuple, str]] = {}  # name -> (identity, table holding it)
        self._generation = 0
        # name -> how many times its copy changed: answers built from the copies (the API's
        # prebuilt answers) compare these to know they are out of date.
        self.versions: dict[str, int] = dict.fromkeys(self.names, 0)

    def stale(self, names: tuple[str, ...] | None = None) -> list[str]:
        """The copies (of `names`, or of every table) older than their files."""
        # An hourly table's files are listed at most every `window_recheck` seconds (`Identities`);
        # a table found out of date stays so until it is loaded, however often it is asked about.
        found = []
        with self.identities.batch():
            for name in self.names if names is None else (n for n in names if n in self.names):
                loaded = self._loaded.get(name)
                if loaded is None or loaded[0] != self.identities(name):
                    found.append(name)
        return found

    def load(self, name: str) -> None:
        """Bring the in-memory copy of `name` up to its files and point `raw_<name>` at it."""
        if self.identities.watches(name):
            # Current by the file events (a rewritten hour is one `stat`, not a listing).
            identity = self.identities(name)
        else:
            identity = table_identity(self.lake, name)  # taken first: a change mid-load reloads next time
            # A listing taken before this one may be older than the copy about to be loaded.
            self.identities.forget(name)
        previous = self._loaded.get(name)
        if previous is not None and previous[0] == identity:
            return
        by_file = self._by_file(name, identity, previous)
        if by_file:
            self._retry(lambda: self._update_files(previous[1], previous[0], identity))
            self._loaded[name] = (identity, previous[1])
            self.versions[name] += 1
            return
        self._generation += 1
        table = f"memory_{name}_{self._generation}"
        self._retry(lambda: self.con.execute(f"CREATE TABLE {table} AS {self._source(name, identity)}"), cleanup=f"DROP TABLE IF EXISTS {table}")
        # The file name column only serves the file-by-file updates; the view is the table's own.
        columns = "* EXCLUDE (filename)" if self._has_files(name, identity) and self.lake.table(name).layout == "window" else "*"
        self.con.execute(f"CREATE OR REPLACE VIEW raw_{name} AS SELECT {columns} FROM {table}")
        self._loaded[name] = (identity, table)
        self.versions[name] += 1
        if previous is not None:
            self.con.execute(f"DROP TABLE IF EXISTS {previous[1]}")

    def _has_files(self, name: str, identity: tuple) -> bool:
        return any(stat is not None for _, stat in identity) if self.lake.table(name).layout == "window" else self.lake.has_files(name)

    def _by_file(self, name: str, identity: tuple, previous: tuple[tuple, str] | None) -> bool:
        """Whether an hourly table can be brought up to date file by file (it had files, still has)."""
        return (
            self.lake.table(name).layout == "window"
            and previous is not None
            and self._has_files(name, previous[0])
            and self._has_files(name, identity)
        )

    def _source(self, name: str, identity: tuple) -> str:
        if self.lake.table(name).layout != "window" or not self._has_files(name, identity):
            return self.lake._source_sql(name)
        return _read_files([path for path, stat in identity if stat is not None])

    def _update_files(self, table: str, before: tuple, after: tuple) -> None:
        old, new = dict(before), dict(after)
        gone = [path for path, stat in old.items() if new.get(path) != stat]
        fresh = [path for path, stat in new.items() if stat is not None and old.get(path) != stat]
        self.con.execute("BEGIN TRANSACTION")
        try:
            if gone:
                self.con.execute(f"DELETE FROM {table} WHERE filename IN (SELECT unnest(?::VARCHAR[]))", [gone])
            if fresh:
                self.con.execute(f"INSERT INTO {table} BY NAME {_read_files(fresh)}")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _retry(self, action, cleanup: str | None = None) -> None:
        for attempt in range(LOAD_ATTEMPTS):
            try:
                action()
                return
            except (duckdb.BinderException, duckdb.ParserException, duckdb.CatalogException):
                raise
            except duckdb.Error:
                # A partition replaced mid-read (see reader.fetch_with_retry); the rename is atomic.
                if cleanup:
                    self.con.execute(cleanup)
                if attempt == LOAD_ATTEMPTS - 1:
                    raise
                time.sleep(0.002 * 2**attempt)

    def repoint(self) -> None:
        """After the lake's views were recreated over the files: back to the loaded copies."""
        for name, (_, table) in self._loaded.items():
            self.con.execute(f"CREATE OR REPLACE VIEW raw_{name} AS SELECT * FROM {table}")
