"""Reading the lake into polars frames: one partition, an hour range, or a whole table.

Every frame comes back conformed to its table's schema (a file from before a column was added
reads it as null); an absent partition reads as an empty frame with that schema. SQL over the lake is `views.py`'s; the API's shared reader is `reader.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.layout import LakeLayout
from coordinator_dagster.lake.segments import read_hour, segment_names
from coordinator_dagster.windows import window_keys_between


class LakeReads(LakeLayout):
    """The frame-reading half of `Lake`."""

    def exists(self, name: str, key: str | None = None) -> bool:
        path = self.partition_path(name, key)
        self.storage.sync_files([path])
        return path.exists() or bool(segment_names(path.parent))

    def read_paths(self, name: str, paths: Iterable[Path]) -> pl.DataFrame:
        schema = self.table(name).schema
        paths = list(paths)
        self.storage.sync_files(paths)  # object storage: bring these files up to the store first
        frames = []
        for path in paths:
            # Each file is read through one open handle: given a path, polars opens it more than
            # once, and a writer renaming a new version into place in between makes it mix the
            # two files (a page-size error or a panic). An open handle keeps the old inode.
            try:
                with open(path, "rb") as handle:
                    frames.append(schemas.upgrade(pl.read_parquet(handle), schema, name))
            except FileNotFoundError:
                continue
        if not frames:
            return schemas.empty(schema)
        # One contiguous chunk: polars' grouped float aggregations over many chunks can sum in a
        # different order from run to run, and re-scoring must give byte-identical partitions.
        frame = pl.concat(frames, how="vertical_relaxed").rechunk() if len(frames) > 1 else frames[0].rechunk()
        return schemas.conform(frame, schema, name)

    def read(self, name: str, key: str | None = None) -> pl.DataFrame:
        """One partition (or the single table); an empty frame with the schema if absent. An hour
        partition is read whole or from its segments (`segments.py`), never a mix."""
        if self.table(name).layout == "window":
            path = self.partition_path(name, key)
            self.storage.sync_files([path])  # object storage: this host's copy brought up first
            return read_hour(path, self.table(name).schema, name)
        return self.read_paths(name, [self.partition_path(name, key)])

    def read_window(self, name: str, start: dt.datetime, end: dt.datetime, column: str | None = None) -> pl.DataFrame:
        """Rows of an hourly table from the hour partitions overlapping [start, end).

        With `column`, rows are also filtered to `start <= column < end`.
        """
        parts = [self.read(name, key) for key in window_keys_between(start, end)]
        frame = pl.concat(parts).rechunk() if parts else schemas.empty(self.table(name).schema)
        if column is not None:
            frame = frame.filter((pl.col(column) >= start) & (pl.col(column) < end))
        return frame

    def read_all(self, name: str) -> pl.DataFrame:
        return self.read_paths(name, self.files(name))
