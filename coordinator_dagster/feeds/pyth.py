"""The Pyth Hermes client: one tick per step over HTTP (history for backfills, the latest price
for live steps), Pyth's feed ids and the price arithmetic the batch and streaming paths share.

Hermes serves history one publish time per request (`/v2/updates/price/{publish_time}`, every
subject in one call) and has no range endpoint; Pyth's Benchmarks TradingView shim has ranges but
only of one-minute-and-coarser bars, not ticks. So history requests go out `concurrency` at a
time (bounded: Hermes rate-limits per IP or key, and a 429 is retried with backoff)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from coordinator_dagster.feeds.sources import FeedError, Source, UnsupportedFeedError, empty_rows, rows_frame, with_retries

# Pyth's published ids for the crypto/USD price feeds (https://pyth.network/developers/price-feed-ids).
PYTH_FEED_IDS = {
    "BTC": "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
    "ETH": "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",
}



class PythSource(Source):
    """Pyth Hermes over HTTP. A tick per granularity step: the first price update published in
    that step, from `/v2/updates/price/{publish_time}` (so history backfills work) and, for the
    newest steps, from `/v2/updates/price/latest`. Pyth publishes prices, not candles."""

    kind: str = "tick"
    base_url: str = "https://hermes.pyth.network"
    api_key: str = ""  # sent as `Authorization: Bearer` (the resource takes dg.EnvVar("PYTH_API_KEY"))
    feed_ids: dict[str, str] = {}  # subject → 64-hex feed id; BTC and ETH are built in
    timeout_seconds: float = 10.0
    max_retries: int = 4
    backoff_seconds: float = 1.0
    live_seconds: int = 120  # steps this recent come from the latest price
    concurrency: int = 4  # history requests in flight at once (PYTH_CONCURRENCY)

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
            logger=self._log,
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
            wanted = [slot for slot in grid if not all((s, slot) in found for s in self.subjects)]

            def history(slot: int) -> dict | None:
                return self._get(client, f"/v2/updates/price/{slot}", ids)

            with ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="hermes") as pool:
                try:
                    # map() yields in slot order, so the first update per step wins as before.
                    for slot, body in zip(wanted, pool.map(history, wanted)):
                        for subject, ts, price in self._parse(body, by_id):
                            if 0 <= ts - slot < step:  # an update published in this step, or it is missing
                                found.setdefault((subject, slot), price)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)  # a step failed for good: ask no more
                    raise
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


def pyth_value(price: object, expo: object) -> float:
    """Hermes' integer price and exponent as a float (the batch and the streaming path share it)."""
    mantissa, exponent = int(price), int(expo)
    # Dividing by an exact power of ten rounds once, so 6500012345678e-8 reads as 65000.12345678.
    return mantissa / 10**-exponent if exponent < 0 else float(mantissa * 10**exponent)


class _Transient(Exception):
    """A Hermes answer worth retrying (429, 5xx)."""
