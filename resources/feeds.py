"""Feed sources: the interface every source implements, and the synthetic default.

A source returns records in the `feed_records` schema for [start, end); assets decide which
window to ask for (only closed candles, only the partition's hours).
"""

import datetime as dt
from abc import ABC, abstractmethod

import dagster as dg
import polars as pl

from coordinator_dagster import schemas
from coordinator_dagster.granularity import granularity_seconds
from coordinator_dagster.synthetic import generate_records


class FeedSource(dg.ConfigurableResource, ABC):
    subjects: list[str] = ["BTC", "ETH"]
    kind: str = "candle"
    granularity: str = "1m"

    @property
    def source_name(self) -> str:
        raise NotImplementedError

    @property
    def step_seconds(self) -> int:
        return granularity_seconds(self.granularity)

    @abstractmethod
    def fetch(self, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Every subject's records with ts_event in [start, end), in the feed_records schema."""


class SyntheticFeed(FeedSource):
    """Seeded geometric Brownian motion with volatility clustering; needs no network."""

    seed: int = 7

    @property
    def source_name(self) -> str:
        return "synthetic"

    def fetch(self, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        frames = [
            generate_records(
                seed=self.seed, subject=subject, kind=self.kind, granularity=self.granularity, start=start, end=end
            )
            for subject in self.subjects
        ]
        if not frames:
            return schemas.empty(schemas.FEED_RECORDS)
        return pl.concat(frames).sort("ts_event", "subject")
