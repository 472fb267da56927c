"""A loopback Binance-shaped HTTP server for tests and the ingest benchmark.

Speaks the real wire format the unmodified ccxt `binance` class expects: `GET /api/v3/exchangeInfo`
(spot markets) and `GET /api/v3/klines` (startTime / endTime in ms, limit ≤ 1000, rows
`[openTime, "o", "h", "l", "c", "v", closeTime, "quoteVolume", trades, "takerBase", "takerQuote",
"0"]`). Candles are a deterministic function of (symbol, open time), so a test can compare what
landed in the lake with `server.candles(...)` exactly. Faults are queued per request: an HTTP
status (429, 500), "timeout" (answer after the client gave up) or "truncate" (half a page);
`down_from` (open ms) makes every klines request from then on answer 500, an outage.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.loopback_server import LoopbackServer

INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000}


def _market(symbol: str, base: str, quote: str) -> dict:
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
        ],
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
    }


class ExchangeServer(LoopbackServer):
    """`with ExchangeServer() as server: ... server.base_url ...`"""

    def __init__(self, symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"), timeout_delay: float = 1.5):
        self.symbols = {s.replace("/", ""): s for s in symbols}
        self.faults: deque[object] = deque()  # consumed one per klines request
        self.missing: set[tuple[str, int]] = set()  # (market id, open ms) the exchange never had
        self.frozen_from: dict[str, int] = {}  # market id → open ms from which the close stops moving
        self.down_from: int | None = None  # klines from this open ms answer 500 (an outage)
        self.timeout_delay = timeout_delay
        self.trade_every_ms = 15_000  # one aggregate trade every 15 s, at the minute's close price
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._start_server()

    # ---- the data ----------------------------------------------------------------------
    def close_price(self, market_id: str, open_ms: int) -> float:
        frozen = self.frozen_from.get(market_id)
        if frozen is not None and open_ms >= frozen:
            open_ms = frozen
        base = 60_000.0 if market_id.startswith("BTC") else 3_000.0
        minute = open_ms // 60_000
        return round(base * (1 + 0.01 * math.sin(minute / 97.0) + 0.002 * math.cos(minute / 7.0)), 2)

    def kline(self, market_id: str, open_ms: int, step_ms: int) -> list:
        close = self.close_price(market_id, open_ms)
        prev = self.close_price(market_id, open_ms - step_ms)
        high, low = max(prev, close) * 1.0005, min(prev, close) * 0.9995
        volume = 1.0 + (open_ms // step_ms) % 13
        return [open_ms, f"{prev:.2f}", f"{high:.2f}", f"{low:.2f}", f"{close:.2f}", f"{volume:.5f}", open_ms + step_ms - 1,
                f"{volume * close:.4f}", 100, f"{volume / 2:.5f}", f"{volume * close / 2:.4f}", "0"]

    def candles(self, symbol: str, start_ms: int, end_ms: int, interval: str = "1m") -> list[list]:
        """The exchange's rows with open time in [start_ms, end_ms), what a complete fetch returns."""
        market_id, step = symbol.replace("/", ""), INTERVAL_MS[interval]
        first = start_ms + (-start_ms) % step
        return [self.kline(market_id, t, step) for t in range(first, end_ms, step) if (market_id, t) not in self.missing]

    # ---- HTTP --------------------------------------------------------------------------
    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                with server._lock:
                    server.requests.append(url.path)
                if url.path == "/api/v3/exchangeInfo":
                    markets = [_market(mid, *sym.split("/")) for mid, sym in server.symbols.items()]
                    self._send(200, {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [], "symbols": markets})
                elif url.path == "/api/v3/klines":
                    self._klines(query)
                elif url.path == "/api/v3/aggTrades":
                    self._agg_trades(query)
                else:
                    self._send(404, {"code": -1, "msg": f"no route {url.path}"})

            def _agg_trades(self, query: dict[str, str]) -> None:
                start, end = int(query["startTime"]), int(query["endTime"])
                if end - start > 3_600_000:
                    self._send(400, {"code": -1127, "msg": "More than 1 hours between startTime and endTime."})
                    return
                limit = min(int(query.get("limit", 500)), 1000)
                every = server.trade_every_ms
                trades = []
                t = start + (-start) % every
                while t <= end and len(trades) < limit:
                    price = server.close_price(query["symbol"], t - t % 60_000)
                    trades.append({"a": t // every, "p": f"{price:.2f}", "q": "0.10000", "f": t // every, "l": t // every, "T": t, "m": False, "M": True})
                    t += every
                self._send(200, trades)

            def _klines(self, query: dict[str, str]) -> None:
                with server._lock:
                    fault = server.faults.popleft() if server.faults else None
                if fault is None and server.down_from is not None and int(query.get("startTime", 0)) >= server.down_from:
                    fault = 500
                if isinstance(fault, int):
                    self._send(fault, {"code": -1003 if fault == 429 else -1000, "msg": f"injected {fault}"})
                    return
                if fault == "timeout":
                    time.sleep(server.timeout_delay)
                market_id, interval = query["symbol"], query["interval"]
                if market_id not in server.symbols:
                    self._send(400, {"code": -1121, "msg": "Invalid symbol."})
                    return
                step = INTERVAL_MS[interval]
                limit = min(int(query.get("limit", 500)), 1000)
                start = int(query.get("startTime", 0))
                end = int(query.get("endTime", start + step * limit))
                rows = []
                t = start + (-start) % step
                while t <= end and len(rows) < limit:
                    if (market_id, t) not in server.missing:
                        rows.append(server.kline(market_id, t, step))
                    t += step
                if fault == "truncate":
                    rows = rows[: len(rows) // 2]
                self._send(200, rows)

        return Handler
