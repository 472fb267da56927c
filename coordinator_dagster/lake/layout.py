"""Where every lake table's files live: the tables, their layouts, and partition key ↔ path.

Layout under `<home>/lake/<table>/`: hourly tables in hive folders
(`date=2026-11-25/hour=10/data.parquet`, so a time filter prunes whole folders), period tables
as `period=<key>/data.parquet`, single tables as `data.parquet`, and append-only event tables
as one file per event. Versioned tables (scores, snapshots, ensemble predictions) keep one
folder per scoring version above that (`version=<v>/`).

Nothing here reads or writes a file's contents.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.partitions import PERIOD_KEY_FORMAT, WINDOW_KEY_FORMAT

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
        Table("snapshots", "window", schemas.SNAPSHOTS, versioned=True),
        Table("leaderboard", "single", schemas.leaderboard_schema(window_names)),
        # The leaderboard as of each hour (the newest build of that hour), for per-model history.
        Table("leaderboard_history", "window", schemas.leaderboard_schema(window_names)),
        Table("checkpoints", "period", schemas.CHECKPOINTS),
        Table("checkpoint_events", "events", schemas.CHECKPOINT_EVENTS),
        Table("models", "single", schemas.MODELS),
    ]
    return {t.name: t for t in tables}


# ---- the lake's paths --------------------------------------------------------------------------


class LakeLayout:
    """The paths half of `Lake`: one home, its tables and where their partitions are."""

    def __init__(
        self,
        home: str | os.PathLike[str],
        window_names: Iterable[str] = DEFAULT_WINDOW_NAMES,
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
            dt.datetime.strptime(key or "", PERIOD_KEY_FORMAT)  # validates the key
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
        return FILE_PATTERNS[self.table(name).layout]
