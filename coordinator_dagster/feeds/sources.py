"""Feed sources: the interface every source implements, its errors, the retry helper, the
record-frame helpers the clients share, and the synthetic default. The real clients live beside
it (`ccxt.py`, `pyth.py`); none of them knows Dagster: `resources/feeds.py` wraps each one in a
`ConfigurableResource` with the same fields.

A source returns records in the `feed_records` schema for [start, end); assets decide which
window to ask for (only closed candles, only the partition's hours) and judge the result with the
feed checks. Sources retry transient faults (429, 5xx, timeouts, dropped connections) with
backoff and raise `FeedUnavailableError` when a window still fails, before anything is written.
A source that cannot serve the configured kind or granularity raises `UnsupportedFeedError`; it
never substitutes another one.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Self, TypeVar

import polars as pl
from pydantic import BaseModel, ConfigDict, PrivateAttr

from coordinator_dagster.lake import schemas
from coordinator_dagster.feeds.checks import FeedCheckConfig
from coordinator_dagster.feeds.granularity import granularity_seconds
from coordinator_dagster.feeds.synthetic import generate_records

T = TypeVar("T")
log = logging.getLogger("coordinator.feeds")


class FeedError(RuntimeError):
    """A feed problem the operator has to look at."""


class FeedUnavailableError(FeedError):
    """The source kept failing after every retry; nothing of the window was written."""


class UnsupportedFeedError(FeedError, ValueError):
    """The source cannot serve the configured kind, granularity or subject."""


class Source(BaseModel, ABC):
    """What every feed client is configured with and answers."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, as in Dagster config

    subjects: list[str] = ["BTC", "ETH"]
    kind: str = "candle"
    granularity: str = "1m"
    # Tolerances of the feed checks (see coordinator_dagster/feeds/checks.py); they sit on the
    # feed because they depend on it, and the score sensor reads the same values.
    # None: scaled to the granularity (FeedCheckConfig.for_step).
    max_gap_steps: int | None = None
    frozen_records: int | None = None
    freshness_seconds: int = 180

    # Where retries are reported; a Dagster resource points it at the run's log.
    _log: logging.Logger = PrivateAttr(default_factory=lambda: log)

    def logging_to(self, logger: logging.Logger) -> Self:
        self._log = logger
        return self

    def check_config(self) -> None:
        """Refuse, before any run, a kind or granularity this source cannot serve (no network)."""

    def check_settings(self) -> FeedCheckConfig:
        return FeedCheckConfig.for_step(self.step_seconds, self.max_gap_steps, self.frozen_records, self.freshness_seconds)

    @property
    def source_name(self) -> str:
        raise NotImplementedError

    @property
    def step_seconds(self) -> int:
        return granularity_seconds(self.granularity)

    @abstractmethod
    def fetch(self, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None) -> pl.DataFrame:
        """Every subject's records with ts_event in [start, end), in the feed_records schema.

        `now` is the caller's clock (sources that serve live data differently use it)."""


class SyntheticSource(Source):
    """Seeded geometric Brownian motion with volatility clustering; needs no network."""

    seed: int = 7

    @property
    def source_name(self) -> str:
        return "synthetic"

    def fetch(self, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None) -> pl.DataFrame:
        frames = [
            generate_records(
                seed=self.seed, subject=subject, kind=self.kind, granularity=self.granularity, start=start, end=end
            )
            for subject in self.subjects
        ]
        if not frames:
            return schemas.empty(schemas.FEED_RECORDS)
        return pl.concat(frames).sort("ts_event", "subject")


def with_retries(
    call: Callable[[], T],
    retryable: tuple[type[BaseException], ...],
    *,
    attempts: int,
    backoff_seconds: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    logger: logging.Logger = log,
) -> T:
    """`call()`, retried on `retryable` with exponential backoff (backoff, 2×, 4×, …)."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except retryable as error:
            if attempt == attempts:
                raise FeedUnavailableError(f"{what} failed after {attempts} attempts: {type(error).__name__}: {error}") from error
            delay = backoff_seconds * 2 ** (attempt - 1)
            logger.warning("%s: %s (%s); retry %d/%d in %.2f s", what, type(error).__name__, str(error)[:200], attempt, attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def epoch_ms(ts: dt.datetime) -> int:
    return int(ts.timestamp() * 1000)


def rows_frame(rows: dict[str, list], source: str, kind: str, granularity: str) -> pl.DataFrame:
    """Columns collected by `empty_rows()` as a `feed_records` frame (epoch ms → UTC time)."""
    n = len(rows["ts_event"])
    frame = pl.DataFrame(
        {
            "source": [source] * n,
            "subject": rows["subject"],
            "kind": [kind] * n,
            "granularity": [granularity] * n,
            "ts_event": pl.Series(rows["ts_event"], dtype=pl.Int64).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
            **{c: pl.Series(rows[c], dtype=pl.Float64) for c in ("open", "high", "low", "close", "volume", "price")},
        }
    )
    return schemas.conform(frame, schemas.FEED_RECORDS, "feed_records")


def empty_rows() -> dict[str, list]:
    """Empty columns for a client to append records to, one list per `feed_records` value."""
    return {c: [] for c in ("subject", "ts_event", "open", "high", "low", "close", "volume", "price")}
