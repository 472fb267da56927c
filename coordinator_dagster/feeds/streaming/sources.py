"""Stream adapters: one per wire protocol, each turning messages into records.

`stream()` is an async generator: it connects, then yields `(received_at, items)` per message
(or per batch ccxt hands over), where an item is an `Update` (a valid record of a step, closed
or still forming) or a `Malformed` (logged and skipped by the listener). A dropped connection,
a refused subscription or a transport error raises `StreamDisconnected`; a configuration the
source cannot serve raises `UnsupportedFeedError` (coordinator_dagster.feeds.sources), which stops the listener.

- `CcxtStream`: ccxt.pro `watch_ohlcv_for_symbols` (candles of every subject on one socket).
- `HermesStream`: Pyth Hermes `GET /v2/updates/price/stream?ids[]=…&parsed=true`
  (server-sent events), one tick per step: the first price published in it.
- `SyntheticStream`: the synthetic source in real time, each step emitted when it closes, from
  the same generator as the batch path (values equal row for row).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from coordinator_dagster.feeds.streaming.records import MalformedRecord, Record, candle_record, tick_record
from coordinator_dagster.feeds.ccxt import CcxtSource, point_exchange_at, point_websockets_at
from coordinator_dagster.feeds.pyth import PythSource, pyth_value
from coordinator_dagster.feeds.sources import FeedError, Source, SyntheticSource, UnsupportedFeedError

UTC = dt.timezone.utc


class StreamDisconnected(Exception):
    """The connection ended or failed; the listener reconnects with backoff."""


@dataclass(frozen=True, slots=True)
class Update:
    record: Record
    rank: float = 0.0  # orders updates of one step where the first one counts (Pyth publish time)


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str
    subject: str | None = None
    ts_ms: int | None = None  # the step it claimed to update, when readable


Item = Update | Malformed
Batch = tuple[float, list[Item]]


class StreamSource(ABC):
    """What the listener needs to know about a stream besides its messages."""

    closed_records = False  # every update is already a closed step (no StepCloser)
    first_step_partial = False  # the first step seen on a connection may lack its first updates
    prefer_earliest = False  # a step's record is its earliest update (Pyth), not its latest
    idle_timeout: float | None = 30.0  # no message for this long: treat the connection as dead

    def __init__(self, feed: Source):
        self.feed = feed
        self.subjects = list(feed.subjects)
        self.step_ms = feed.step_seconds * 1000

    @property
    def source(self) -> str:
        return self.feed.source_name

    @property
    def kind(self) -> str:
        return self.feed.kind

    @property
    def granularity(self) -> str:
        return self.feed.granularity

    def prepare(self) -> None:
        """Slow one-off set-up (imports), run before the first connection."""

    @abstractmethod
    def describe(self) -> str:
        """Where the stream comes from, for log lines."""

    @abstractmethod
    def stream(self) -> AsyncIterator[Batch]:
        ...


class CcxtStream(StreamSource):
    def __init__(self, feed: CcxtSource, ws_url: str = "", idle_timeout: float = 30.0):
        super().__init__(feed)
        if feed.kind != "candle":
            raise UnsupportedFeedError("the live listener streams ccxt candles (watch_ohlcv): set FEED_KIND=candle, or use FEED_SOURCE=pyth for ticks")
        self.ccxt_feed = feed
        self.ws_url = ws_url
        self.idle_timeout = idle_timeout
        self.by_symbol = {feed.symbol(s): s for s in feed.subjects}
        self._all_ids: set[str] = set()
        self.malformed_unreported = 0  # malformed messages beyond the queue's room (a flood)

    def exchange(self) -> Any:
        """A fresh ccxt.pro client: one per connection, so nothing of a dead socket is reused."""
        import ccxt.pro

        feed = self.ccxt_feed
        if feed.exchange not in ccxt.pro.exchanges:
            raise UnsupportedFeedError(f"FEED_EXCHANGE={feed.exchange!r} has no WebSocket API in ccxt.pro")
        exchange = getattr(ccxt.pro, feed.exchange)({"enableRateLimit": True, "timeout": int(feed.timeout_seconds * 1000)})
        exchange.options["fetchMarkets"] = {**exchange.options.get("fetchMarkets", {}), "types": ["spot"]}
        if feed.base_url:
            websockets = copy.deepcopy(exchange.urls["api"].get("ws"))
            point_exchange_at(exchange, feed.base_url)
            if websockets is not None:
                exchange.urls["api"]["ws"] = websockets  # FEED_BASE_URL is the REST side only
        if self.ws_url:
            point_websockets_at(exchange, self.ws_url)
        if not exchange.has.get("watchOHLCVForSymbols"):
            raise UnsupportedFeedError(f"{feed.exchange} streams no candles for several symbols through ccxt.pro")
        if feed.granularity not in exchange.timeframes:
            raise UnsupportedFeedError(f"{feed.exchange} has no {feed.granularity} candles; FEED_GRANULARITY must be one of {sorted(exchange.timeframes)}")
        return exchange

    def describe(self) -> str:
        return f"{self.ccxt_feed.exchange} WebSocket {self.ws_url or '(exchange default)'} {', '.join(self.by_symbol)} {self.granularity} candles"

    def prepare(self) -> None:
        import ccxt.pro  # noqa: F401 - ≈5 s on first import: done before the idle clock runs

    def _inspect(self, message: object, ids: dict[str, str]) -> Malformed | None:
        """Binance messages ccxt would mis-parse (it caches a kline without checking it, and a
        text frame that is not JSON is passed on as a string): name the problem, or None."""
        if not isinstance(message, dict):
            return Malformed(f"message is not a JSON object: {str(message)[:120]!r}")
        if message.get("e") != "kline":
            return None  # subscription answers and other events: ccxt's business
        k = message.get("k")
        if not isinstance(k, dict):
            return Malformed(f"kline event without a 'k' object: {str(message)[:160]}")
        subject = ids.get(str(k.get("s")))
        ts = k.get("t") if isinstance(k.get("t"), int) and not isinstance(k.get("t"), bool) else None
        if subject is None:
            return Malformed(f"kline of unknown market {k.get('s')!r}") if k.get("s") not in self._all_ids else None
        if ts is None or k.get("i") != self.granularity:
            return Malformed(f"{subject}: kline with open time {k.get('t')!r} / interval {k.get('i')!r}", subject, ts)
        try:
            candle_record(subject, [ts, *(float(k[f]) for f in "ohlcv")], self.step_ms)
        except (KeyError, TypeError, ValueError) as error:
            return Malformed(f"{subject}: kline at {ts} unreadable ({type(error).__name__}: {error})", subject, ts)
        return None

    async def stream(self) -> AsyncIterator[Batch]:
        import ccxt

        exchange = self.exchange()
        # One watcher per symbol: ccxt resolves a watch with the first message that matches it,
        # so a single watch over several symbols would leave the others' updates unannounced
        # until their next message.
        queue: asyncio.Queue[tuple[float, list[Item]] | BaseException] = asyncio.Queue(maxsize=1024)
        watchers: list[asyncio.Task] = []
        try:
            try:
                await exchange.load_markets()
            except ccxt.BaseError as error:
                raise StreamDisconnected(f"load_markets: {type(error).__name__}: {error}") from error
            unknown = [s for s in self.by_symbol if s not in exchange.markets]
            if unknown:
                raise UnsupportedFeedError(f"{self.ccxt_feed.exchange} has no market {', '.join(unknown)}; map subjects with FEED_SYMBOLS")
            ids = {exchange.market(symbol)["id"]: subject for symbol, subject in self.by_symbol.items()}
            self._all_ids = {m["id"] for m in exchange.markets.values()}
            handle = exchange.handle_message

            def inspected(client: Any, message: object) -> Any:
                problem = self._inspect(message, ids)
                if problem is None:
                    return handle(client, message)
                try:
                    queue.put_nowait((time.time(), [problem]))
                except asyncio.QueueFull:
                    self.malformed_unreported += 1
                return None

            # ccxt binds the handler when it opens the connection: wrapping it here lets each
            # raw message be checked first, without changing the library.
            exchange.handle_message = inspected

            async def watch(symbol: str, subject: str) -> None:
                try:
                    while True:
                        rows = await exchange.watch_ohlcv(symbol, self.granularity)
                        received = time.time()
                        items: list[Item] = []
                        for row in rows:
                            try:
                                items.append(Update(candle_record(subject, list(row), self.step_ms)))
                            except MalformedRecord as error:
                                ts = row[0] if isinstance(row, list) and row and isinstance(row[0], int) else None
                                items.append(Malformed(str(error), subject, ts))
                        await queue.put((received, items))
                except asyncio.CancelledError:
                    raise
                except BaseException as error:  # noqa: BLE001 - handed to the consumer below
                    await queue.put(error)

            loop = asyncio.get_running_loop()
            previous_handler = loop.get_exception_handler()

            def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict) -> None:
                # ccxt decodes each frame in a loop callback: a frame that looks like JSON but is
                # not raises there, and ccxt's reading loop for that socket stops. Report the
                # frame as malformed and reconnect at once instead of waiting for the idle timeout.
                error = context.get("exception")
                if isinstance(error, ValueError) and "ccxt" in "".join(traceback.format_tb(error.__traceback__)):
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait((time.time(), [Malformed(f"frame ccxt cannot decode ({type(error).__name__}: {error})")]))
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait(StreamDisconnected("ccxt stopped reading the socket after an undecodable frame"))
                elif previous_handler is not None:
                    previous_handler(loop, context)
                else:
                    loop.default_exception_handler(context)

            loop.set_exception_handler(on_loop_error)
            watchers = [asyncio.create_task(watch(symbol, subject)) for symbol, subject in self.by_symbol.items()]
            while True:
                item = await queue.get()
                if isinstance(item, StreamDisconnected):
                    raise item
                if isinstance(item, ccxt.BaseError):
                    raise StreamDisconnected(f"{type(item).__name__}: {str(item)[:300]}") from item
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            if watchers:
                loop.set_exception_handler(previous_handler)
            await exchange.close()


class HermesStream(StreamSource):
    first_step_partial = True
    prefer_earliest = True

    def __init__(self, feed: PythSource, idle_timeout: float = 30.0):
        super().__init__(feed)
        feed.check_config()
        self.pyth = feed
        self.idle_timeout = idle_timeout
        self.by_id = {feed.feed_id(s): s for s in feed.subjects}

    def describe(self) -> str:
        return f"Pyth Hermes SSE {self.pyth.base_url.rstrip('/')}/v2/updates/price/stream {', '.join(self.subjects)}"

    async def stream(self) -> AsyncIterator[Batch]:
        import httpx

        params = [("ids[]", i) for i in self.by_id] + [("parsed", "true")]
        headers = {"Accept": "text/event-stream"}
        if self.pyth.api_key:
            headers["Authorization"] = f"Bearer {self.pyth.api_key}"
        timeout = httpx.Timeout(self.pyth.timeout_seconds, read=self.idle_timeout)
        try:
            async with httpx.AsyncClient(base_url=self.pyth.base_url.rstrip("/"), headers=headers, timeout=timeout) as client:
                async with client.stream("GET", "/v2/updates/price/stream", params=params) as response:
                    if response.status_code != 200:
                        body = (await response.aread()).decode(errors="replace")[:300]
                        if response.status_code in (401, 403) or (400 <= response.status_code < 500 and response.status_code != 429):
                            raise FeedError(f"Hermes stream refused: HTTP {response.status_code}: {body}")
                        raise StreamDisconnected(f"Hermes stream: HTTP {response.status_code}: {body}")
                    data: list[str] = []
                    async for line in response.aiter_lines():
                        if line:
                            # Server-sent events: `data:` lines build an event, a blank line ends
                            # it; comments (`:`) are keep-alives, other fields are not used.
                            if line.startswith("data:"):
                                data.append(line[5:].removeprefix(" "))
                            continue
                        if data:
                            received = time.time()
                            yield received, self.parse("\n".join(data))
                            data = []
        except httpx.TransportError as error:
            raise StreamDisconnected(f"{type(error).__name__}: {error}") from error
        raise StreamDisconnected("Hermes closed the stream")

    def parse(self, text: str) -> list[Item]:
        try:
            body = json.loads(text)
        except ValueError as error:
            return [Malformed(f"event is not JSON ({error}): {text[:120]!r}")]
        entries = body.get("parsed") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            return [Malformed(f"event has no 'parsed' list: {text[:120]!r}")]
        step_s = self.step_ms // 1000
        items: list[Item] = []
        for entry in entries:
            feed_id = str(entry.get("id", "")).lower().removeprefix("0x") if isinstance(entry, dict) else ""
            subject = self.by_id.get(feed_id)
            if subject is None:
                if not feed_id:
                    items.append(Malformed(f"entry without an id: {str(entry)[:120]}"))
                continue  # a feed we did not subscribe to
            slot_ms = None
            try:
                price = entry["price"]
                publish = price["publish_time"]
                if isinstance(publish, bool) or not isinstance(publish, int) or publish <= 0:
                    raise MalformedRecord(f"publish_time {publish!r}")
                slot_ms = (publish - publish % step_s) * 1000
                value = pyth_value(price["price"], price["expo"])
                items.append(Update(tick_record(subject, slot_ms, value), rank=publish))
            except (KeyError, TypeError, ValueError, OverflowError) as error:
                items.append(Malformed(f"{subject}: bad price entry ({type(error).__name__}: {error}): {str(entry)[:160]}", subject, slot_ms))
        return items


class SyntheticStream(StreamSource):
    closed_records = True
    idle_timeout = None  # it emits once a step: silence is not a fault

    def __init__(self, feed: SyntheticSource, clock: Callable[[], float] = time.time):
        super().__init__(feed)
        self.clock = clock

    def describe(self) -> str:
        return f"synthetic stream (seed {self.feed.seed}) {', '.join(self.subjects)} {self.granularity} {self.kind}s in real time"

    async def stream(self) -> AsyncIterator[Batch]:
        step = self.step_ms // 1000
        while True:
            now = self.clock()
            close = (int(now) // step + 1) * step
            await asyncio.sleep(max(0.0, close - now))
            start = dt.datetime.fromtimestamp(close - step, UTC)
            frame = self.feed.fetch(start, start + dt.timedelta(seconds=step))
            received = time.time()
            items: list[Item] = []
            for row in frame.iter_rows(named=True):
                ts_ms = int(row["ts_event"].timestamp() * 1000)
                items.append(Update(Record(row["subject"], ts_ms, close=row["close"], open=row["open"], high=row["high"], low=row["low"], volume=row["volume"])))
            yield received, items


def stream_source(feed: Source, *, ws_url: str = "", idle_timeout: float = 30.0) -> StreamSource:
    """The adapter for the configured feed client."""
    if isinstance(feed, CcxtSource):
        return CcxtStream(feed, ws_url=ws_url, idle_timeout=idle_timeout)
    if isinstance(feed, PythSource):
        return HermesStream(feed, idle_timeout=idle_timeout)
    if isinstance(feed, SyntheticSource):
        return SyntheticStream(feed)
    raise UnsupportedFeedError(f"no live stream for {type(feed).__name__}")
