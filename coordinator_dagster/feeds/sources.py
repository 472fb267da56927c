"""Feed sources: the interface every source implements, the synthetic default, ccxt and Pyth.

A source returns records in the `feed_records` schema for [start, end); assets decide which
window to ask for (only closed candles, only the partition's hours) and judge the result with the
feed checks. Sources retry transient faults (429, 5xx, timeouts, dropped connections) with
backoff and raise `FeedUnavailableError` when a window still fails, before anything is written.
A source that cannot serve the configured kind or granularity raises `UnsupportedFeedError`; it
never substitutes another one.
"""

from __future__ import annotations

import datetime as dt
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from coordinator_dagster.lake import schemas
from coordinator_dagster.feeds.checks import FeedCheckConfig
from coordinator_dagster.feeds.granularity import granularity_seconds
from coordinator_dagster.feeds.synthetic import generate_records

T = TypeVar("T")
TRADES_SLICE_MS = 3_600_000

# Pyth's published ids for the crypto/USD price feeds (https://pyth.network/developers/price-feed-ids).
PYTH_FEED_IDS = {
    "BTC": "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
    "ETH": "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",
}


class FeedError(RuntimeError):
    """A feed problem the operator has to look at."""


class FeedUnavailableError(FeedError):
    """The source kept failing after every retry; nothing of the window was written."""


class UnsupportedFeedError(FeedError, ValueError):
    """The source cannot serve the configured kind, granularity or subject."""


class FeedSource(dg.ConfigurableResource, ABC):
    subjects: list[str] = ["BTC", "ETH"]
    kind: str = "candle"
    granularity: str = "1m"
    # Tolerances of the feed checks (see coordinator_dagster/feeds/checks.py); they sit on the
    # feed because they depend on it, and the score sensor reads the same values.
    max_gap_steps: int = 1
    frozen_records: int = 30
    freshness_seconds: int = 180

    def check_config(self) -> None:
        """Refuse, before any run, a kind or granularity this source cannot serve (no network)."""

    def check_settings(self) -> FeedCheckConfig:
        return FeedCheckConfig(self.max_gap_steps, self.frozen_records, self.freshness_seconds)

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


class SyntheticFeed(FeedSource):
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


# ---- shared helpers --------------------------------------------------------------------------


def with_retries(
    call: Callable[[], T],
    retryable: tuple[type[BaseException], ...],
    *,
    attempts: int,
    backoff_seconds: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, retried on `retryable` with exponential backoff (backoff, 2×, 4×, …)."""
    logger = dg.get_dagster_logger()
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except retryable as error:
            if attempt == attempts:
                raise FeedUnavailableError(f"{what} failed after {attempts} attempts: {type(error).__name__}: {error}") from error
            delay = backoff_seconds * 2 ** (attempt - 1)
            logger.warning(f"{what}: {type(error).__name__} ({str(error)[:200]}); retry {attempt}/{attempts - 1} in {delay:.2f} s")
            sleep(delay)
    raise AssertionError("unreachable")


def _ms(ts: dt.datetime) -> int:
    return int(ts.timestamp() * 1000)


def _frame(rows: dict[str, list], source: str, kind: str, granularity: str) -> pl.DataFrame:
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


def _empty_rows() -> dict[str, list]:
    return {c: [] for c in ("subject", "ts_event", "open", "high", "low", "close", "volume", "price")}


# ---- ccxt ------------------------------------------------------------------------------------


def _rebase_urls(value: Any, base_url: str) -> Any:
    """Every URL in a (nested) ccxt `urls` entry moved to `base_url`, each keeping its path."""
    if isinstance(value, str):
        parts = urlsplit(value)
        return base_url.rstrip("/") + parts.path if parts.scheme else value
    if isinstance(value, dict):
        return {k: _rebase_urls(v, base_url) for k, v in value.items()}
    return value


def point_exchange_at(exchange: Any, base_url: str) -> None:
    """Rewrite every API URL of a ccxt exchange to `base_url`, keeping each URL's path (how the
    unmodified ccxt class talks to a mirror, a proxy or the tests' loopback server)."""
    exchange.urls["api"] = _rebase_urls(exchange.urls["api"], base_url)


class CcxtFeed(FeedSource):
    """Any exchange ccxt supports: candles through `fetch_ohlcv` paged with since/limit, ticks
    as the last trade of each granularity step through `fetch_trades`. ccxt's own rate limiter
    spaces the requests; transient errors are retried here with backoff."""

    exchange: str = "binance"
    quote: str = "USDT"
    symbols: dict[str, str] = {}  # subject → market symbol; default "<SUBJECT>/<quote>"
    base_url: str = ""  # replaces scheme and host of every API URL (mirrors, proxies, tests)
    timeout_seconds: float = 10.0
    max_retries: int = 4
    backoff_seconds: float = 1.0
    page_limit: int = 1000
    rate_limit_ms: int = 0  # 0: the exchange's own ccxt rate limit

    _client: Any = PrivateAttr(default=None)

    @property
    def source_name(self) -> str:
        return self.exchange

    def symbol(self, subject: str) -> str:
        return self.symbols.get(subject, f"{subject}/{self.quote}")

    def client(self) -> Any:
        if self._client is None:
            import ccxt

            if self.exchange not in ccxt.exchanges:
                raise UnsupportedFeedError(f"FEED_EXCHANGE={self.exchange!r} is not an exchange ccxt knows")
            exchange = getattr(ccxt, self.exchange)({"enableRateLimit": True, "timeout": int(self.timeout_seconds * 1000)})
            if self.rate_limit_ms:
                exchange.rateLimit = self.rate_limit_ms
            exchange.options["fetchMarkets"] = {**exchange.options.get("fetchMarkets", {}), "types": ["spot"]}
            if self.base_url:
                point_exchange_at(exchange, self.base_url)
            self._client = exchange
        return self._client

    def _call(self, what: str, call: Callable[[], T]) -> T:
        import ccxt

        # NetworkError covers 429 (RateLimitExceeded, DDoSProtection), timeouts and 5xx
        # (ExchangeNotAvailable); OperationFailed adds exchange-side "unknown error" codes such as
        # Binance -1000 that come with a 500.
        return with_retries(call, (ccxt.OperationFailed,), attempts=self.max_retries + 1, backoff_seconds=self.backoff_seconds, what=what)

    def check_config(self) -> None:
        exchange = self.client()
        if self.kind == "candle":
            if not exchange.has.get("fetchOHLCV"):
                raise UnsupportedFeedError(f"{self.exchange} has no candles through ccxt; use FEED_KIND=tick")
            if self.granularity not in exchange.timeframes:
                raise UnsupportedFeedError(
                    f"{self.exchange} has no {self.granularity} candles; FEED_GRANULARITY must be one of {sorted(exchange.timeframes)}"
                )
        elif not exchange.has.get("fetchTrades"):
            raise UnsupportedFeedError(f"{self.exchange} serves no trades through ccxt; use FEED_KIND=candle")

    def check_supported(self) -> None:
        self.check_config()
        exchange = self.client()
        self._call(f"{self.exchange} load_markets", exchange.load_markets)
        unknown = [f"{s} ({self.symbol(s)})" for s in self.subjects if self.symbol(s) not in exchange.markets]
        if unknown:
            raise UnsupportedFeedError(f"{self.exchange} has no market for {', '.join(unknown)}; map subjects with FEED_SYMBOLS")

    def fetch(self, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None) -> pl.DataFrame:
        self.check_supported()
        rows = _empty_rows()
        for subject in self.subjects:
            if self.kind == "candle":
                self._candles(subject, start, end, rows)
            else:
                self._ticks(subject, start, end, rows)
        return _frame(rows, self.source_name, self.kind, self.granularity).sort("ts_event", "subject")

    def _candles(self, subject: str, start: dt.datetime, end: dt.datetime, rows: dict[str, list]) -> None:
        exchange, symbol = self.client(), self.symbol(subject)
        step_ms = self.step_seconds * 1000
        since, end_ms = _ms(start), _ms(end)
        while since < end_ms:
            limit = min(self.page_limit, -(-(end_ms - since) // step_ms))
            what = f"{self.exchange} {symbol} {self.granularity} candles from {dt.datetime.fromtimestamp(since / 1000, dt.timezone.utc):%Y-%m-%d %H:%M}"
            page = self._call(
                what, lambda: exchange.fetch_ohlcv(symbol, self.granularity, since=since, limit=limit, params={"until": end_ms - 1})
            )
            # A short page is not the end: ask again from after its last candle, until the window
            # is covered or the exchange has nothing more (what is missing then is a recorded gap).
            page = [r for r in page if since <= r[0] < end_ms]
            if not page:
                break
            for ts, o, h, low, c, v in (r[:6] for r in page):
                rows["subject"].append(subject)
                rows["ts_event"].append(ts)
                for col, val in (("open", o), ("high", h), ("low", low), ("close", c), ("volume", v), ("price", c)):
                    rows[col].append(val)
            since = page[-1][0] + step_ms

    def _ticks(self, subject: str, start: dt.datetime, end: dt.datetime, rows: dict[str, list]) -> None:
        exchange, symbol = self.client(), self.symbol(subject)
        step_ms = self.step_seconds * 1000
        since, end_ms = _ms(start), _ms(end)
        last: dict[int, tuple[float, float]] = {}  # step open → (last price, amount traded in the step)
        seen: set[object] = set()
        while since < end_ms:
            # Exchanges bound a trades query in time (Binance: one hour between startTime and endTime).
            slice_end = min(end_ms, since + TRADES_SLICE_MS)
            what = f"{self.exchange} {symbol} trades from {dt.datetime.fromtimestamp(since / 1000, dt.timezone.utc):%Y-%m-%d %H:%M:%S}"
            page = self._call(
                what, lambda: exchange.fetch_trades(symbol, since=since, limit=self.page_limit, params={"until": slice_end - 1})
            )
            fresh = [t for t in page if since <= t["timestamp"] < slice_end and (t.get("id"), t["timestamp"]) not in seen]
            for trade in fresh:
                seen.add((trade.get("id"), trade["timestamp"]))
                bucket = trade["timestamp"] - trade["timestamp"] % step_ms
                amount = last.get(bucket, (0.0, 0.0))[1] + float(trade.get("amount") or 0.0)
                last[bucket] = (float(trade["price"]), amount)
            # A full page may have more trades after it (same millisecond included: `seen` skips
            # repeats); otherwise this slice is done.
            since = fresh[-1]["timestamp"] if fresh and len(page) >= self.page_limit else slice_end
        for bucket in sorted(last):
            price, amount = last[bucket]
            rows["subject"].append(subject)
            rows["ts_event"].append(bucket)
            for col, val in (("open", None), ("high", None), ("low", None), ("close", price), ("volume", amount), ("price", price)):
                rows[col].append(val)


# ---- Pyth Hermes -----------------------------------------------------------------------------


class PythFeed(FeedSource):
    """Pyth Hermes over HTTP. A tick per granularity step: the first price update published in
    that step, from `/v2/updates/price/{publish_time}` (so history backfills work) and, for the
    newest steps, from `/v2/updates/price/latest`. Pyth publishes prices, not candles."""

    kind: str = "tick"
    base_url: str = "https://hermes.pyth.network"
    api_key: str = ""  # sent as `Authorization: Bearer`; pass dg.EnvVar("PYTH_API_KEY")
    feed_ids: dict[str, str] = {}  # subject → 64-hex feed id; BTC and ETH are built in
    timeout_seconds: float = 10.0
    max_retries: int = 4
    backoff_seconds: float = 1.0
    live_seconds: int = 120  # steps this recent come from the latest price

    @property
    def source_name(self) -> str:
        return "pyth"

    def feed_id(self, subject: str) -> str:
        feed = {**PYTH_FEED_IDS, **self.feed_ids}.get(subject)
        if feed is None:
            raise UnsupportedFeedError(f"no Pyth feed id for {subject}; set one with PYTH_FEED_IDS={subject}=<64 hex>")
        return feed.lower().removeprefix("0x")

    def check_config(self) -> None:
        if self.kind != "tick":
            raise UnsupportedFeedError("Pyth Hermes serves prices, not candles: set FEED_KIND=tick with FEED_SOURCE=pyth")
        for subject in self.subjects:
            self.feed_id(subject)

    def _get(self, client: Any, path: str, ids: list[str]) -> dict | None:
        import httpx

        def call() -> dict | None:
            response = client.get(path, params=[("ids[]", i) for i in ids] + [("parsed", "true")])
            if response.status_code == 404:
                return None  # Hermes has no update for that time
            if response.status_code == 429 or response.status_code >= 500:
                raise _Transient(f"HTTP {response.status_code}: {response.text[:200]}")
            if response.status_code >= 400:
                raise FeedError(f"Hermes {path}: HTTP {response.status_code}: {response.text[:300]}")
            return response.json()

        return with_retries(
            call,
            (_Transient, httpx.TransportError),
            attempts=self.max_retries + 1,
            backoff_seconds=self.backoff_seconds,
            what=f"Hermes GET {path}",
        )

    def fetch(self, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None) -> pl.DataFrame:
        import httpx

        self.check_config()
        now = now or dt.datetime.now(dt.timezone.utc)
        step = self.step_seconds
        by_id = {self.feed_id(s): s for s in self.subjects}
        ids = list(by_id)
        grid = list(range(int(start.timestamp()) + (-int(start.timestamp())) % step, int(end.timestamp()), step))
        live_from = int(now.timestamp()) - self.live_seconds
        found: dict[tuple[str, int], float] = {}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        with httpx.Client(base_url=self.base_url.rstrip("/"), headers=headers, timeout=self.timeout_seconds) as client:
            if grid and grid[-1] >= live_from:
                for subject, ts, price in self._parse(self._get(client, "/v2/updates/price/latest", ids), by_id):
                    slot = ts - ts % step
                    if grid[0] <= slot <= grid[-1] and slot >= live_from:
                        found[(subject, slot)] = price
            for slot in grid:
                if all((s, slot) in found for s in self.subjects):
                    continue
                for subject, ts, price in self._parse(self._get(client, f"/v2/updates/price/{slot}", ids), by_id):
                    if 0 <= ts - slot < step:  # an update published in this step, or it is missing
                        found.setdefault((subject, slot), price)
        rows = _empty_rows()
        for (subject, slot), price in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            rows["subject"].append(subject)
            rows["ts_event"].append(slot * 1000)
            for col, val in (("open", None), ("high", None), ("low", None), ("close", price), ("volume", None), ("price", price)):
                rows[col].append(val)
        return _frame(rows, self.source_name, self.kind, self.granularity)

    @staticmethod
    def _parse(body: dict | None, by_id: dict[str, str]) -> list[tuple[str, int, float]]:
        out = []
        for entry in (body or {}).get("parsed", []):
            subject = by_id.get(str(entry.get("id", "")).lower().removeprefix("0x"))
            if subject is None:
                continue
            price = entry["price"]
            out.append((subject, int(price["publish_time"]), pyth_value(price["price"], price["expo"])))
        return out


def pyth_value(price: object, expo: object) -> float:
    """Hermes' integer price and exponent as a float (the batch and the streaming path share it)."""
    mantissa, exponent = int(price), int(expo)
    # Dividing by an exact power of ten rounds once, so 6500012345678e-8 reads as 65000.12345678.
    return mantissa / 10**-exponent if exponent < 0 else float(mantissa * 10**exponent)


def point_websockets_at(exchange: Any, ws_url: str) -> None:
    """Rewrite the WebSocket URLs of a ccxt.pro exchange (`urls['api']['ws']`) to `ws_url`,
    keeping each URL's path: how the live listener reaches a mirror or a loopback server."""
    exchange.urls["api"]["ws"] = _rebase_urls(exchange.urls["api"]["ws"], ws_url)


class _Transient(Exception):
    """A Hermes answer worth retrying (429, 5xx)."""
