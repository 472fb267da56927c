"""A loopback WebSocket server in Binance's market-stream format, for the live listener's tests
and the stream benchmark.

The unmodified ccxt.pro `binance` client connects to `ws://127.0.0.1:<port>/ws/<n>` (its
`urls['api']['ws']` rewritten to `ws_url`), sends `{"method": "SUBSCRIBE", "params":
["btcusdt@kline_1m", ...], "id": n}` and gets `{"result": null, "id": n}` back, as from
Binance. The test then pushes kline events (`{"e": "kline", "E": ..., "s": "BTCUSDT", "k": {"t",
"T", "s", "i", "o", "c", "h", "l", "v", "x", ...}}`) to every open connection with `send`, or raw
text for malformed messages, and can `drop` every connection abruptly (no close frame). Final
candle values come from an `ExchangeServer`, so what the REST double serves for a gap equals
what the stream would have sent.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable

from aiohttp import WSMsgType, web

from tests.exchange_server import INTERVAL_MS, ExchangeServer


class WsExchangeServer:
    def __init__(self, exchange: ExchangeServer):
        self.exchange = exchange
        self.subscriptions: list[list[str]] = []
        self.connections = 0
        self._sockets: set[web.WebSocketResponse] = set()
        self._subscribed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ws-exchange", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> "WsExchangeServer":
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _call(self, coroutine, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._websocket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._drop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            body = json.loads(message.data)
            if body.get("method") == "SUBSCRIBE":
                await ws.send_str(json.dumps({"result": None, "id": body.get("id")}))
                self._sockets.add(ws)
                with self._subscribed:
                    self.subscriptions.append(list(body.get("params", [])))
                    self._subscribed.notify_all()
        self._sockets.discard(ws)
        return ws

    # ---- what the test drives ------------------------------------------------------------
    def subscribed(self) -> int:
        """Streams subscribed so far, over every connection (ccxt subscribes each symbol)."""
        return sum(len(params) for params in self.subscriptions)

    def wait_subscribed(self, count: int = 1, timeout: float = 120.0) -> None:
        """Wait until `count` streams have been subscribed in total (symbols × connections)."""
        with self._subscribed:
            if not self._subscribed.wait_for(lambda: self.subscribed() >= count, timeout):
                raise TimeoutError(f"{self.subscribed()} streams subscribed after {timeout} s, wanted {count}")

    def kline(self, symbol: str, open_ms: int, *, closed: bool, interval: str = "1m", partial: bool = False) -> dict:
        """The kline event of `symbol` ("BTC/USDT") at `open_ms`: the final values (closed or
        its last update before closing), or with `partial` an early update (only the open price
        traded yet), which differs from the final candle."""
        market_id, step = symbol.replace("/", ""), INTERVAL_MS[interval]
        row = self.exchange.kline(market_id, open_ms, step)
        o, h, low, c, v = row[1], row[2], row[3], row[4], row[5]
        if partial:
            h = low = c = o
            v = "0.01000"
        k = {
            "t": open_ms, "T": open_ms + step - 1, "s": market_id, "i": interval, "f": 1, "L": 2,
            "o": o, "c": c, "h": h, "l": low, "v": v, "n": 2, "x": closed, "q": "0", "V": "0", "Q": "0", "B": "0",
        }
        return {"e": "kline", "E": int(time.time() * 1000), "s": market_id, "k": k}

    def send(self, messages: Iterable[dict | str], interval: float = 0.0) -> float:
        """Send `messages` in order to every subscribed connection (a dict as JSON, a str as
        is); returns the wall-clock time the last one was sent."""
        return self._call(self._send(list(messages), interval), timeout=600)

    async def _broadcast(self, message: dict | str) -> None:
        """One message to every subscribed connection; a connection that fails is forgotten."""
        text = message if isinstance(message, str) else json.dumps(message)
        for ws in list(self._sockets):
            if not ws.closed:
                try:
                    await ws.send_str(text)
                except (ConnectionError, RuntimeError):
                    self._sockets.discard(ws)

    async def _send(self, messages: list[dict | str], interval: float) -> float:
        sent = time.time()
        for message in messages:
            await self._broadcast(message)
            sent = time.time()
            if interval:
                await asyncio.sleep(interval)
        return sent

    def send_paced(self, messages: list[dict | str], rate: float | None) -> list[float]:
        """Send `messages` at `rate` per second (None: as fast as possible), each to every
        subscribed connection; returns the wall-clock time each one was sent (benchmarks)."""
        return self._call(self._send_paced(messages, rate), timeout=3600)

    async def _send_paced(self, messages: list[dict | str], rate: float | None) -> list[float]:
        times = []
        start = time.monotonic()
        for i, message in enumerate(messages):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self._broadcast(message)
            times.append(time.time())
        return times

    def drop(self) -> None:
        """Cut every connection without a close frame, as a network failure does."""
        self._call(self._drop())

    async def _drop(self) -> None:
        for ws in list(self._sockets):
            self._sockets.discard(ws)
            transport = ws._req.transport if ws._req is not None else None
            if transport is not None:
                transport.abort()
