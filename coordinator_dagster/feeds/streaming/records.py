"""Stream records: the record type, the rule deciding when a step is closed, and the merge that
the stream shares with the batch path (same key, the last record wins).

A candle (or a tick step) is CLOSED once an update of a later step of the same subject arrives:
exchanges send a candle's final update before the first update of the next one on the same
ordered connection, so the values held at that moment are final. The wall clock is not used:
ccxt's unified `watch_ohlcv` drops Binance's `x` ("is closed") flag, and a candle whose close
time has passed may still get its final update a moment later; writing it then would store a
non-final candle. A step whose successor never comes is never written from the stream; the
listener's gap fill fetches it through the REST path on the next (re)connect.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from coordinator_dagster.lake import schemas


@dataclass(frozen=True, slots=True)
class Record:
    """One candle or tick of one subject; `ts_ms` is the step's open time in ms since the epoch."""

    subject: str
    ts_ms: int
    close: float
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.subject, self.ts_ms)


class MalformedRecord(ValueError):
    """A stream message that cannot become a record; it is logged and skipped."""


def _number(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedRecord(f"{name} is {value!r}, not a number")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise MalformedRecord(f"{name} is {value!r}")
    return number


def candle_record(subject: str, row: object, step_ms: int) -> Record:
    """A ccxt OHLCV row `[open ms, o, h, l, c, v]` as a Record, or MalformedRecord."""
    if not isinstance(row, (list, tuple)) or len(row) < 6:
        raise MalformedRecord(f"{subject}: candle {row!r} is not [t, o, h, l, c, v]")
    ts = row[0]
    if isinstance(ts, bool) or not isinstance(ts, int) or ts <= 0 or ts % step_ms:
        raise MalformedRecord(f"{subject}: candle open time {ts!r} is not on the {step_ms} ms grid")
    o, h, low, c = (_number(n, v, positive=True) for n, v in zip("ohlc", row[1:5]))
    v = _number("volume", row[5], positive=False)
    if not low <= min(o, c) <= max(o, c) <= h:
        raise MalformedRecord(f"{subject}: candle at {ts} has low/high {low}/{h} outside open/close {o}/{c}")
    return Record(subject, ts, close=c, open=o, high=h, low=low, volume=v)


def tick_record(subject: str, ts_ms: int, price: object, volume: object = None) -> Record:
    p = _number("price", price, positive=True)
    return Record(subject, ts_ms, close=p, volume=None if volume is None else _number("volume", volume, positive=False))


def records_frame(records: Iterable[Record], *, source: str, kind: str, granularity: str) -> pl.DataFrame:
    """Records in the feed_records schema (ticks carry their price in `close` and `price`)."""
    records = list(records)
    frame = pl.DataFrame(
        {
            "source": [source] * len(records),
            "subject": [r.subject for r in records],
            "kind": [kind] * len(records),
            "granularity": [granularity] * len(records),
            "ts_event": pl.Series([r.ts_ms for r in records], dtype=pl.Int64).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
            "open": pl.Series([r.open for r in records], dtype=pl.Float64),
            "high": pl.Series([r.high for r in records], dtype=pl.Float64),
            "low": pl.Series([r.low for r in records], dtype=pl.Float64),
            "close": pl.Series([r.close for r in records], dtype=pl.Float64),
            "volume": pl.Series([r.volume for r in records], dtype=pl.Float64),
            "price": pl.Series([r.close for r in records], dtype=pl.Float64),
        }
    )
    return schemas.conform(frame, schemas.FEED_RECORDS, "feed_records")


class StepCloser:
    """Holds each subject's forming step and releases steps once they are closed (see above).

    `prefer_earliest`: for Pyth ticks the step's record is the FIRST price published in it (the
    batch path's rule), so an update replaces the held one only if it was published earlier;
    for candles the latest update wins. Steps already released are remembered (a bounded window
    per subject) so a repeated or stale update of a closed step is dropped, never written over
    the final values; a late step that was never released is released at once.

    Besides records to write, `update` names step ranges the stream cannot be trusted for, to be
    fetched through REST instead: a step whose latest (or, for ticks, possibly first) update was
    malformed, and steps the stream skipped (the forming step jumped ahead by more than one).
    """

    def __init__(self, step_ms: int, *, prefer_earliest: bool = False, memory: int = 4096):
        self.step_ms = step_ms
        self.prefer_earliest = prefer_earliest
        self.memory = memory
        self._forming: dict[str, tuple[Record, float]] = {}
        self._tainted: dict[tuple[str, int], None] = {}  # insertion-ordered, bounded by `memory`
        self._released: dict[str, tuple[set[int], deque[int]]] = {}
        self._floor: dict[str, int] = {}  # per subject: steps at or below are not taken from the stream
        self.duplicates = 0

    def reset(self) -> None:
        """Forget the forming steps (their updates after a disconnect are unknown)."""
        self._forming.clear()
        self._tainted.clear()

    def skip_through(self, subject: str, ts_ms: int) -> None:
        """Take no step <= ts_ms of `subject` from the stream (the gap fill writes them)."""
        self._floor[subject] = max(ts_ms, self._floor.get(subject, ts_ms))

    def released(self, key: tuple[str, int]) -> bool:
        seen = self._released.get(key[0])
        return seen is not None and key[1] in seen[0]

    def mark_released(self, key: tuple[str, int]) -> None:
        seen, order = self._released.setdefault(key[0], (set(), deque()))
        if key[1] in seen:
            return
        seen.add(key[1])
        order.append(key[1])
        if len(order) > self.memory:
            seen.discard(order.popleft())

    def taint(self, subject: str, ts_ms: int) -> None:
        """A malformed update hit this step: when it closes, it is fetched through REST instead
        of written from the stream. Even a valid update after it does not clear that: ccxt hands
        over valid updates later than the raw frames are checked, so which came last is unknown."""
        if ts_ms <= self._floor.get(subject, -1) or self.released((subject, ts_ms)):
            return  # closed already: the stale update changes nothing
        self._tainted[(subject, ts_ms)] = None
        while len(self._tainted) > self.memory:
            del self._tainted[next(iter(self._tainted))]

    def update(self, record: Record, rank: float = 0.0) -> tuple[list[Record], list[tuple[str, int, int]]]:
        """Feed one update; returns (closed records to write, (subject, start, end) to fetch)."""
        if record.ts_ms <= self._floor.get(record.subject, -1) or self.released(record.key):
            self.duplicates += 1
            return [], []
        held = self._forming.get(record.subject)
        if held is None:
            self._start(record, rank)
            return [], []
        current, current_rank = held
        if record.ts_ms == current.ts_ms:
            if not self.prefer_earliest or rank < current_rank:
                self._forming[record.subject] = (record, rank)
            return [], []
        if record.ts_ms > current.ts_ms:
            self._start(record, rank)
            closed, refetch = self._close(current)
            if record.ts_ms > current.ts_ms + self.step_ms:
                refetch.append((record.subject, current.ts_ms + self.step_ms, record.ts_ms))
            return closed, refetch
        # Older than the forming step: its step is over, and it was never released.
        return self._close(record)

    def _start(self, record: Record, rank: float) -> None:
        self._forming[record.subject] = (record, rank)

    def _close(self, record: Record) -> tuple[list[Record], list[tuple[str, int, int]]]:
        self.mark_released(record.key)
        if record.key in self._tainted:
            del self._tainted[record.key]
            return [], [(record.subject, record.ts_ms, record.ts_ms + self.step_ms)]
        return [record], []
