"""The identity of a feed record and the one de-duplication rule every writer of `feed_records`
applies (the batch asset and the live listener alike)."""

from __future__ import annotations

import polars as pl

# One record per source, subject, kind, granularity and event time.
FEED_KEY = ["source", "subject", "kind", "granularity", "ts_event"]


def dedupe_records(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per FEED_KEY, the last one winning, sorted by time then subject."""
    return frame.unique(FEED_KEY, keep="last", maintain_order=True).sort("ts_event", "subject")


def merge_records(existing: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """`new` merged into a stored partition: new keys added, repeated keys replaced by `new`."""
    return dedupe_records(pl.concat([existing, new], how="vertical"))
