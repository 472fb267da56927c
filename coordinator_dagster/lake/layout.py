"""Where every lake table's files live: the tables, their layouts, and partition key ↔ path.

Layout under `<home>/lake/<table>/`: hourly tables in hive folders
(`date=2026-11-25/hour=10/data.parquet`, so a time filter prunes whole folders), period tables
as `period=<key>/data.parquet`, single tables as `data.parquet`, and append-only event tables
as one file per event. Versioned tables (scores, snapshots, ensemble predictions) keep one
folder per scoring version above that (`version=<v>/`).

This module is the only one that spells those folder names; readers that walk the folders
themselves (the API's cache and predictions pages) use its helpers. Nothing here reads or
writes a file's contents.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.storage import LakeStorage, storage_for
from coordinator_dagster.scoring.trading.replay import FILLS as TRADING_FILLS
from coordinator_dagster.scoring.trading.replay import PNL as TRADING_PNL
from coordinator_dagster.windows import WINDOW_KEY_FORMAT, period_start

DATA_FILE = "data.parquet"
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_SCORING_VERSION = "v1"
DEFAULT_WINDOW_NAMES = ("score_recent", "score_steady", "score_anchor")

# File pattern below a table's folder, by layout (what the lake's globs match).
FILE_PATTERNS = {"window": "*/*/*.parquet", "period": "*/*.parquet", "single": "*.parquet", "events": "*.parquet"}


@dataclass(frozen=True)
class Table:
    name: str
    layout: str  # "window" (hourly), "period", "single" or "events"
    schema: pl.Schema
    # Versioned tables keep one folder per scoring version (`version=<v>/...`), so re-scoring with
    # a new version leaves the old one queryable until the operator prunes it.
    versioned: bool = False


def lake_tables(window_names: Iterable[str]) -> dict[str, Table]:
    tables = [
        Table("feed_records", "window", schemas.FEED_RECORDS),
        Table("inputs", "window", schemas.INPUTS),
        Table("predictions", "window", schemas.PREDICTIONS),
        Table("ensemble_predictions", "window", schemas.PREDICTIONS, versioned=True),
        Table("scores", "window", schemas.SCORES, versioned=True),
        # Scores of LATE predictions (coordinator_dagster.scoring.late_track): never ranked or paid.
        Table("late_scores", "window", schemas.SCORES, versioned=True),
        Table("snapshots", "window", schemas.SNAPSHOTS, versioned=True),
        Table("leaderboard", "single", schemas.leaderboard_schema(window_names)),
        # The leaderboard as of each hour (the newest build of that hour), for per-model history.
        Table("leaderboard_history", "window", schemas.leaderboard_schema(window_names)),
        # Leaderboards per horizon and per asset × horizon (density competitions), and each
        # checkpoint's payout table (paid and retained slots).
        Table("group_leaderboard", "single", schemas.group_leaderboard_schema(window_names)),
        Table("checkpoint_payouts", "period", schemas.CHECKPOINT_PAYOUTS),
        Table("checkpoints", "period", schemas.CHECKPOINTS),
        Table("checkpoint_events", "events", schemas.CHECKPOINT_EVENTS),
        Table("checkpoint_reviews", "period", schemas.CHECKPOINT_REVIEWS),
        Table("checkpoint_approvals", "events", schemas.CHECKPOINT_APPROVALS),
        Table("checkpoint_exports", "events", schemas.CHECKPOINT_EXPORTS),
        Table("models", "single", schemas.MODELS),
        Table("density_round_scores", "window", schemas.DENSITY_ROUND_SCORES, versioned=True),
        Table("density_predictions", "window", schemas.DENSITY_PREDICTIONS),
        Table("trading_pnl", "window", TRADING_PNL, versioned=True),
        Table("trading_fills", "window", TRADING_FILLS, versioned=True),
        Table("trading_state", "window", schemas.TRADING_STATE, versioned=True),
    ]
    return {t.name: t for t in tables}


# ---- hourly partitions as folders ------------------------------------------------------------


def window_folder(hour: dt.datetime) -> str:
    """The hive folders of the hour starting at `hour`, relative to the table's folder."""
    return f"date={hour:%Y-%m-%d}/hour={hour:%H}"


def window_start_of_folders(day: str, hour: str) -> dt.datetime | None:
    """The start of the hour whose folders are `day`/`hour` (`date=2026-11-25`, `hour=10`);
    None for names that are not such folders (temporary files, stray folders)."""
    if not (day.startswith("date=") and hour.startswith("hour=") and len(hour) == 7 and hour[5:].isdigit()):
        return None
    try:
        date = dt.date.fromisoformat(day[5:])
    except ValueError:
        return None
    return dt.datetime(date.year, date.month, date.day, int(hour[5:]), tzinfo=dt.timezone.utc)


def window_start_of_file(path: str | os.PathLike[str]) -> dt.datetime | None:
    """The start of the hour a window table's file belongs to."""
    folder = Path(path).parent
    return window_start_of_folders(folder.parent.name, folder.name)


@dataclass(frozen=True)
class WindowFolder:
    start: dt.datetime
    relative: str  # `date=…/hour=…/data.parquet`, the same under every window table
    path: str  # absolute path of the hour's data file (which may not exist)

    @property
    def key(self) -> str:
        return self.start.strftime(WINDOW_KEY_FORMAT)


def scan_window_folders(base: str | os.PathLike[str], start: dt.datetime | None = None, end: dt.datetime | None = None) -> list[WindowFolder]:
    """The hour folders of a window table's folder that overlap [start, end), oldest first.

    os.scandir, not glob: listing a thousand-hour table this way costs about a millisecond, a
    glob plus a date parse per file about ten; days outside the range are not listed at all.
    """
    return list(iter_window_folders(base, start, end))


def iter_window_folders(base: str | os.PathLike[str], start: dt.datetime | None = None, end: dt.datetime | None = None) -> Iterator[WindowFolder]:
    """`scan_window_folders` one day at a time: a day's folder is listed only when the caller
    asks past the day before it, so a reader that stops after a few hours (a chart page) lists
    one or two days, not the whole range (about a millisecond a week of hours)."""
    base = os.fspath(base)
    try:
        days = [d for d in os.scandir(base) if d.name.startswith("date=")]
    except FileNotFoundError:
        return
    dated = []
    for day in days:
        midnight = window_start_of_folders(day.name, "hour=00")
        if midnight is None or (end is not None and midnight >= end) or (start is not None and midnight + dt.timedelta(days=1) <= start):
            continue
        dated.append((midnight, day.name, day.path))
    # Days are disjoint in time: their hours sorted day by day are sorted overall.
    for _, name, path in sorted(dated):
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            continue  # not a folder (found by listing it: only the days read are), or removed since
        found = []
        for entry in entries:
            hour = window_start_of_folders(name, entry.name)
            if hour is None or (end is not None and hour >= end) or (start is not None and hour + dt.timedelta(hours=1) <= start):
                continue
            found.append(WindowFolder(hour, f"{name}/{entry.name}/{DATA_FILE}", os.path.join(entry.path, DATA_FILE)))
        found.sort(key=lambda f: f.start)
        yield from found


def scan_window_files(base: str | os.PathLike[str]) -> list[str]:
    """Data file paths of every hour folder of a window table (which may not exist), oldest
    first: what `scan_window_folders` lists without turning names into times, for callers that
    only compare files (about three times cheaper; the in-memory tables' checks run it often)."""
    base = os.fspath(base)
    try:
        days = sorted(d.path for d in os.scandir(base) if d.name.startswith("date=") and d.is_dir())
    except FileNotFoundError:
        return []
    found = []
    for day in days:
        try:
            hours = sorted(h.name for h in os.scandir(day) if h.name.startswith("hour=") and len(h.name) == 7 and h.name[5:].isdigit())
        except FileNotFoundError:
            continue
        found.extend(os.path.join(day, hour, DATA_FILE) for hour in hours)
    return found


def scan_period_files(base: str | os.PathLike[str]) -> list[str]:
    """Data file paths of a period table (`period=<key>/data.parquet`), in key order."""
    try:
        periods = sorted(e.name for e in os.scandir(base) if e.name.startswith("period="))
    except FileNotFoundError:
        return []
    return [os.path.join(base, name, DATA_FILE) for name in periods]


def scan_event_files(base: str | os.PathLike[str]) -> list[str]:
    """Names of an event table's files (temporary dot-files left out), oldest first."""
    try:
        return sorted(e.name for e in os.scandir(base) if e.name.endswith(".parquet") and not e.name.startswith("."))
    except FileNotFoundError:
        return []


# ---- the lake's paths --------------------------------------------------------------------------


class LakeLayout:
    """The paths half of `Lake`: one home, its tables and where their partitions are."""

    def __init__(
        self,
        home: str | os.PathLike[str],
        window_names: Iterable[str] = DEFAULT_WINDOW_NAMES,
        scoring_version: str = DEFAULT_SCORING_VERSION,
        storage: LakeStorage | None = None,
    ):
        if not VERSION_PATTERN.match(scoring_version):
            raise ValueError(f"scoring version {scoring_version!r} must be letters, digits, '_', '.' or '-' (at most 64)")
        self.home = Path(home).expanduser().resolve()
        self.root = self.home / "lake"
        self.catalog_path = self.home / "coordinator.duckdb"
        self.window_names = tuple(window_names)
        self.scoring_version = scoring_version
        self.tables = lake_tables(self.window_names)
        # Local disk, or object storage with this folder as the host's copy (LAKE_URL).
        self.storage = storage_for(self.root) if storage is None else storage

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

    def all_versions_glob(self, name: str) -> str:
        """Every scoring version's files of a versioned table (hive column `version`)."""
        return str(self.root / name / "version=*" / self._pattern(name))

    def versions(self, name: str) -> list[str]:
        """Scoring versions present for a versioned table."""
        base = self.root / self.table(name).name
        self.storage.sync_folder(base)
        return sorted(p.name.split("=", 1)[1] for p in base.glob("version=*") if p.is_dir())

    def prune_version(self, scoring_version: str) -> list[Path]:
        """Delete another scoring version's scores and snapshots; the current one is refused."""
        if scoring_version == self.scoring_version:
            raise ValueError(f"{scoring_version} is the current scoring version; switch the contract first")
        removed = []
        for table in self.tables.values():
            folder = self.root / table.name / f"version={scoring_version}"
            if table.versioned:
                self.storage.sync_folder(folder.parent)
            if table.versioned and folder.is_dir():
                self.storage.remove_tree(folder)
                removed.append(folder)
        return removed

    def partition_path(self, name: str, key: str | None = None) -> Path:
        table = self.table(name)
        base = self.table_dir(name)
        if table.layout == "window":
            return base / window_folder(dt.datetime.strptime(key or "", WINDOW_KEY_FORMAT)) / DATA_FILE
        if table.layout == "period":
            period_start(key or "")  # validates the key
            return base / f"period={key}" / DATA_FILE
        if table.layout == "single":
            return base / DATA_FILE
        raise ValueError(f"{name} is an event table; use append_event()")

    def glob(self, name: str) -> str:
        return str(self.table_dir(name) / self._pattern(name))

    def files(self, name: str) -> list[Path]:
        self.storage.sync_folder(self.root / self.table(name).name)
        return sorted(self.table_dir(name).glob(self._pattern(name)))

    def has_files(self, name: str) -> bool:
        """Cheaper than `files()`: stops at the first file."""
        self.storage.sync_folder(self.root / self.table(name).name)
        return next(self.table_dir(name).glob(self._pattern(name)), None) is not None

    def newest_window(self, name: str) -> dt.datetime | None:
        """The start of the newest hour a window table has a file for (None if it has none)."""
        files = self.files(name)
        # Hive folders sort by time: the last file is the newest hour.
        return window_start_of_file(files[-1]) if files else None

    def _pattern(self, name: str) -> str:
        return FILE_PATTERNS[self.table(name).layout]
