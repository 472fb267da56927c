"""The ccxt client: candles and ticks from any exchange ccxt supports, and the URL rewrites that
point the unmodified ccxt (REST) and ccxt.pro (WebSocket) classes at a mirror, a proxy or a
loopback server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import polars as pl
from pydantic import PrivateAttr

from coordinator_dagster.feeds.sources import Source, UnsupportedFeedError, empty_rows, epoch_ms, rows_frame, with_retries

T = TypeVar("T")
# Exchanges bound a trades query in time (Binance: one hour between startTime and endTime).
TRADES_SLICE_MS = 3_600_000


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


class CcxtSource(Source):
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
        return with_retries(call, (ccxt.OperationFailed,), attempts=self.max_retries + 1, backoff_seconds=self.backoff_seconds, what=what, logger=self._log)

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
        rows = empty_rows()
        for subject in self.subjects:
            if self.kind == "candle":
                self._candles(subject, start, end, rows)
            else:
                self._ticks(subject, start, end, rows)
        return rows_frame(rows, self.source_name, self.kind, self.granularity).sort("ts_event", "subject")

    def _candles(self, subject: str, start: dt.datetime, end: dt.datetime, rows: dict[str, list]) -> None:
        exchange, symbol = self.client(), self.symbol(subject)
        step_ms = self.step_seconds * 1000
        since, end_ms = epoch_ms(start), epoch_ms(end)
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
        since, end_ms = epoch_ms(start), epoch_ms(end)
        last: dict[int, tuple[float, float]] = {}  # step open → (last price, amount traded in the step)
        seen: set[object] = set()
        while since < end_ms:
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


def point_websockets_at(exchange: Any, ws_url: str) -> None:
    """Rewrite the WebSocket URLs of a ccxt.pro exchange (`urls['api']['ws']`) to `ws_url`,
    keeping each URL's path: how the live listener reaches a mirror or a loopback server."""
    exchange.urls["api"]["ws"] = _rebase_urls(exchange.urls["api"]["ws"], ws_url)
