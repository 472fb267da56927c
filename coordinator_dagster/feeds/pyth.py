"""The Pyth client: history from Pyth's Benchmarks in ranges (candles from its TradingView shim,
ticks from its interval endpoint), the newest ticks from Hermes, Pyth's feed ids and the price
arithmetic the batch and streaming paths share.

History is asked for in batches, never one request per step:
- candles (`FEED_KIND=candle`, one minute and coarser): `GET /v1/shims/tradingview/history?
  symbol=Crypto.BTC/USD&resolution=1&from=&to=` answers `{"s": "ok", "t": [...], "o", "h", "l",
  "c", "v"}`, up to `bars_per_request` bars per subject per request;
- ticks: `GET /v1/updates/price/{timestamp}/{interval}?ids=...&parsed=true` answers every update
  published in [timestamp, timestamp + interval] (interval at most 60 s) for every subject at once,
  a list of Hermes-shaped `{"binary", "parsed": [...]}` objects.
Requests go out `concurrency` at a time (bounded: Pyth rate-limits per IP or key, and a 429 is
retried with backoff).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from coordinator_dagster.feeds.sources import FeedError, Source, UnsupportedFeedError, empty_rows, rows_frame, with_retries

# Pyth's published ids for the crypto/USD price feeds (https://pyth.network/developers/price-feed-ids).
PYTH_FEED_IDS = {
    "BTC": "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
    "ETH": "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",
}
# A subject named as an exchange pair (BTCUSDT) is Pyth's crypto/USD feed of its base asset.
_QUOTE_SUFFIXES = ("USDT", "USDC", "BUSD", "USD")
# The TradingView shim's resolution for each candle granularity it serves (seconds → name).
SHIM_RESOLUTIONS = {
    60: "1", 120: "2", 300: "5", 900: "15", 1800: "30", 3600: "60", 7200: "120",
    14400: "240", 21600: "360", 43200: "720", 86400: "1D",
}
# Benchmarks' interval endpoint answers at most this many seconds of updates per request.
TICK_BATCH_SECONDS = 60


def base_asset(subject: str) -> str:
    for suffix in _QUOTE_SUFFIXES:
        if subject.endswith(suffix) and len(subject) > len(suffix):
            return subject.removesuffix(suffix)
    return subject


class PythSource(Source):
    """Pyth over HTTP: history from Benchmarks in ranges, the newest ticks from Hermes' latest
    price. Ticks: one per granularity step, the first price update published in that step.
    Candles: Pyth's one-minute-and-coarser bars (its volume is 0: Pyth publishes prices)."""

    kind: str = "tick"
    base_url: str = "https://hermes.pyth.network"
    benchmarks_url: str = "https://benchmarks.pyth.network"
    api_key: str = ""  # sent as `Authorization: Bearer` (the resource takes dg.EnvVar("PYTH_API_KEY"))
    feed_ids: dict[str, str] = {}  # subject → 64-hex feed id; BTC and ETH are built in
    timeout_seconds: float = 10.0
    max_retries: int = 4
    backoff_seconds: float = 1.0
    live_seconds: int = 120  # tick steps this recent come from the latest price
    concurrency: int = 4  # history requests in flight at once (PYTH_CONCURRENCY)
    bars_per_request: int = 1440  # candles asked per subject per request (a day of minutes)

    @property
    def source_name(self) -> str:
        return "pyth"

    def feed_id(self, subject: str) -> str:
        known = {**PYTH_FEED_IDS, **self.feed_ids}
        feed = known.get(subject) or known.get(base_asset(subject))
        if feed is None:
            raise UnsupportedFeedError(f"no Pyth feed id for {subject}; set one with PYTH_FEED_IDS={subject}=<64 hex>")
        return feed.lower().removeprefix("0x")

    @staticmethod
    def symbol(subject: str) -> str:
        """The TradingView shim's name for a subject's crypto/USD feed."""
        return f"Crypto.{base_asset(subject)}/USD"

    def check_config(self) -> None:
        if self.kind == "candle":
            if self.step_seconds not in SHIM_RESOLUTIONS:
                raise UnsupportedFeedError(
                    f"Pyth serves candles of 1m and coarser ({', '.join(f'{s}s' for s in SHIM_RESOLUTIONS)}), "
                    f"not {self.granularity}: use FEED_KIND=tick for finer steps"
                )
        elif self.kind != "tick":
            raise UnsupportedFeedError(f"FEED_KIND={self.kind}: Pyth serves tick or candle")
        for subject in self.subjects:
            self.feed_id(subject)

    def _get(self, client: Any, path: str, params: list[tuple[str, str]]) -> Any:
        import httpx

        def call() -> Any:
            response = client.get(path, params=params)
            if response.status_code == 404:
                return None  # no update for that time
            if response.status_code == 429 or response.status_code >= 500:
                raise _Transient(f"HTTP {response.status_code}: {response.text[:200]}")
            if response.status_code >= 400:
                raise FeedError(f"Pyth {path}: HTTP {response.status_code}: {response.text[:300]}")
            return response.json()

        return with_retries(
            call,
            (_Transient, httpx.TransportError),
            attempts=self.max_retries + 1,
            backoff_seconds=self.backoff_seconds,
            what=f"Pyth GET {path}",
            logger=self._log,
        )

    def _in_order(self, call: Callable[[Any], Any], items: Iterable[Any]) -> Iterable[tuple[Any, Any]]:
        """(item, call(item)) in the items' order, `concurrency` calls in flight at once."""
        items = list(items)
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="pyth") as pool:
            try:
                yield from zip(items, pool.map(call, items))
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # a request failed for good: ask no more
                raise

    def fetch(self, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None) -> pl.DataFrame:
        import httpx

        self.check_config()
        now = now or dt.datetime.now(dt.timezone.utc)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

        def client(url: str) -> httpx.Client:
            return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=self.timeout_seconds)

        with client(self.benchmarks_url) as benchmarks, client(self.base_url) as hermes:
            if self.kind == "candle":
                return self._candles(benchmarks, start, end, now)
            return self._ticks(benchmarks, hermes, start, end, now)

    def _candles(self, client: Any, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> pl.DataFrame:
        step = self.step_seconds
        first = int(start.timestamp()) + (-int(start.timestamp())) % step
        # Only candles that have closed by `now`: an open bar would be stored with a moving close.
        stop = min(int(end.timestamp()), int(now.timestamp()) - step + 1)
        span = step * max(1, self.bars_per_request)
        chunks = [(subject, t, min(t + span, stop)) for subject in self.subjects for t in range(first, stop, span)]

        def history(chunk: tuple[str, int, int]) -> Any:
            subject, lo, hi = chunk
            params = [("symbol", self.symbol(subject)), ("resolution", SHIM_RESOLUTIONS[step]), ("from", str(lo)), ("to", str(hi - 1))]
            return self._get(client, "/v1/shims/tradingview/history", params)

        rows = empty_rows()
        for (subject, lo, hi), body in self._in_order(history, chunks):
            status = (body or {}).get("s", "no_data")
            if status == "no_data":
                continue
            if status != "ok":
                raise FeedError(f"Pyth TradingView history {self.symbol(subject)}: {body.get('errmsg') or body}")
            for t, o, h, low, c, v in zip(body["t"], body["o"], body["h"], body["l"], body["c"], body["v"], strict=True):
                if lo <= t < hi and t % step == 0:
                    rows["subject"].append(subject)
                    rows["ts_event"].append(t * 1000)
                    for col, val in (("open", o), ("high", h), ("low", low), ("close", c), ("volume", v), ("price", c)):
                        rows[col].append(float(val))
        frame = rows_frame(rows, self.source_name, self.kind, self.granularity)
        return frame.unique(["subject", "ts_event"], keep="first", maintain_order=True).sort("ts_event", "subject")

    def _ticks(self, benchmarks: Any, hermes: Any, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> pl.DataFrame:
        step = self.step_seconds
        by_id = {self.feed_id(s): s for s in self.subjects}
        ids = list(by_id)
        grid = list(range(int(start.timestamp()) + (-int(start.timestamp())) % step, int(end.timestamp()), step))
        live_from = int(now.timestamp()) - self.live_seconds
        found: dict[tuple[str, int], float] = {}
        if grid and grid[-1] >= live_from:
            latest = self._get(hermes, "/v2/updates/price/latest", [("ids[]", i) for i in ids] + [("parsed", "true")])
            for subject, ts, price in self._parse(latest, by_id):
                slot = ts - ts % step
                if grid[0] <= slot <= grid[-1] and slot >= live_from:
                    found[(subject, slot)] = price
        wanted = [slot for slot in grid if not all((s, slot) in found for s in self.subjects)]

        def history(span: tuple[int, int]) -> Any:
            lo, hi = span
            params = [("ids", i) for i in ids] + [("parsed", "true")]
            # The interval includes both ends: [lo, hi - 1] is the span's whole seconds.
            return self._get(benchmarks, f"/v1/updates/price/{lo}/{hi - 1 - lo}", params)

        wanted_slots = set(wanted)
        for _, body in self._in_order(history, _tick_spans(wanted, step)):
            updates = [u for update in (body or []) for u in self._parse(update, by_id)]
            # The first update published in a step wins, whatever order the answer lists them in.
            for subject, ts, price in sorted(updates, key=lambda u: u[1]):
                slot = ts - ts % step
                if slot in wanted_slots:
                    found.setdefault((subject, slot), price)
        rows = empty_rows()
        for (subject, slot), price in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            rows["subject"].append(subject)
            rows["ts_event"].append(slot * 1000)
            for col, val in (("open", None), ("high", None), ("low", None), ("close", price), ("volume", None), ("price", price)):
                rows[col].append(val)
        return rows_frame(rows, self.source_name, self.kind, self.granularity)

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


def _tick_spans(slots: list[int], step: int) -> list[tuple[int, int]]:
    """[start, end) spans of at most TICK_BATCH_SECONDS covering the steps `slots` (sorted step
    starts) need: consecutive steps share a request; a step longer than the limit is asked for its
    first TICK_BATCH_SECONDS (its first update is what counts).
    >>> _tick_spans([0, 1, 2, 70], 1)
    [(0, 3), (70, 71)]
    >>> _tick_spans([0, 60, 120], 60)
    [(0, 60), (60, 120), (120, 180)]
    """
    spans: list[tuple[int, int]] = []
    for slot in slots:
        end = slot + min(step, TICK_BATCH_SECONDS)
        if spans and spans[-1][1] == slot and end - spans[-1][0] <= TICK_BATCH_SECONDS:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((slot, end))
    return spans


def pyth_value(price: object, expo: object) -> float:
    """Hermes' integer price and exponent as a float (the batch and the streaming path share it)."""
    mantissa, exponent = int(price), int(expo)
    # Dividing by an exact power of ten rounds once, so 6500012345678e-8 reads as 65000.12345678.
    return mantissa / 10**-exponent if exponent < 0 else float(mantissa * 10**exponent)


class _Transient(Exception):
    """A Hermes answer worth retrying (429, 5xx)."""
