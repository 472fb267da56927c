"""A loopback Pyth-shaped HTTP server: Hermes (`/v2/updates/price/latest` and
`/v2/updates/price/{publish_time}` with `ids[]=` and `parsed=true`, answering in Hermes' JSON
`{"binary": ..., "parsed": [{"id", "price": {"price", "conf", "expo", "publish_time"}, ...}]}`) and
Benchmarks on the same base URL: `/v1/updates/price/{timestamp}/{interval}?ids=…` (a list of such
objects, one per second with updates in [timestamp, timestamp + interval]) and the TradingView shim
`/v1/shims/tradingview/history?symbol=Crypto.BTC/USD&resolution=1&from=&to=` (`{"s": "ok", "t",
"o", "h", "l", "c", "v"}`, or `{"s": "no_data"}`). Every id publishes one update a second; prices
are a deterministic function of (id, second); faults are queued per request.

`/v2/updates/price/stream` is Hermes' server-sent event stream: `text/event-stream` in chunked
transfer encoding, one `data:{...}` event per price update (the same JSON as the REST answers).
The test pushes events to every open stream with `publish` (`event(t)` builds the update of
every subscribed id published at t; a str is sent as the event's data as is) and cuts every
stream mid-response with `drop_streams` (no terminating chunk, as a network failure does).
"""

from __future__ import annotations

import json
import queue
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.loopback_server import LoopbackServer

EXPO = -8
# The TradingView shim's symbols of the feeds the double knows.
SYMBOLS = {
    "Crypto.BTC/USD": "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
    "Crypto.ETH/USD": "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",
}
RESOLUTIONS = {"1": 60, "2": 120, "5": 300, "15": 900, "30": 1800, "60": 3600, "120": 7200, "240": 14400, "360": 21600, "720": 43200, "1D": 86400, "D": 86400}


class HermesServer(LoopbackServer):
    def __init__(self, now: int):
        self.now = now  # unix seconds the "latest" answer is published at
        self.faults: deque[int] = deque()
        self.missing: set[int] = set()  # seconds in which nothing is published
        self.down_from: int | None = None  # history from this unix second on answers 503
        # When set, history requests wait until this many are in flight at once (a client that
        # asks one at a time breaks it: `rendezvous_broken`, and gets a 503).
        self.rendezvous: threading.Barrier | None = None
        self.rendezvous_broken = False
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization header)
        self.streams: list[queue.Queue] = []  # one per open event stream
        self.stream_ids: list[list[str]] = []  # ids[] of each stream request, in order
        self._streams_changed = threading.Condition()
        self._start_server()

    # ---- server-sent events ------------------------------------------------------------
    def wait_streams(self, count: int, timeout: float = 120.0) -> None:
        """Wait until `count` stream requests have arrived in total."""
        with self._streams_changed:
            if not self._streams_changed.wait_for(lambda: len(self.stream_ids) >= count, timeout):
                raise TimeoutError(f"{len(self.stream_ids)} stream requests after {timeout} s, wanted {count}")

    def event(self, publish_time: int, ids: list[str] | None = None) -> dict:
        ids = ids if ids is not None else self.stream_ids[-1]
        return {"binary": {"encoding": "hex", "data": ["00"]}, "parsed": [self.entry(i, publish_time) for i in ids]}

    def publish(self, *events: dict | str) -> None:
        for event in events:
            data = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
            for stream in list(self.streams):
                stream.put(data)

    def drop_streams(self) -> None:
        for stream in list(self.streams):
            stream.put(None)

    def __exit__(self, *exc) -> None:
        self.drop_streams()
        super().__exit__(*exc)

    @staticmethod
    def price(feed_id: str, publish_time: int) -> int:
        base = 6_500_000_000_000 if feed_id.startswith("e62d") else 300_000_000_000
        return base + (publish_time % 3600) * 12_345

    def entry(self, feed_id: str, publish_time: int) -> dict:
        price = {"price": str(self.price(feed_id, publish_time)), "conf": "1000000", "expo": EXPO, "publish_time": publish_time}
        return {"id": feed_id, "price": price, "ema_price": price, "metadata": {"slot": publish_time, "proof_available_time": publish_time + 1}}

    def updates(self, ids: list[str], start: int, interval: int) -> list[dict]:
        """Benchmarks' interval answer: one object per second in [start, start + interval] with updates."""
        seconds = [t for t in range(start, start + interval + 1) if t not in self.missing]
        return [{"binary": {"encoding": "hex", "data": ["00"]}, "parsed": [self.entry(i, t) for i in ids]} for t in seconds]

    def bars(self, symbol: str, resolution: str, start: int, end: int) -> dict:
        """The shim's history answer: bars opening in [start, end] (both included), up to `now`."""
        feed_id, step = SYMBOLS[symbol], RESOLUTIONS[resolution]
        opens = [t for t in range(start + (-start) % step, end + 1, step) if t <= self.now]
        if not opens:
            return {"s": "no_data"}
        prices = [[self.price(feed_id, s) / 10**-EXPO for s in range(t, t + step)] for t in opens]
        return {"s": "ok", "t": opens, "o": [p[0] for p in prices], "h": [max(p) for p in prices],
                "l": [min(p) for p in prices], "c": [p[-1] for p in prices], "v": [0] * len(opens)}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, ids: list[str]) -> None:
                events: queue.Queue = queue.Queue()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                server.streams.append(events)
                with server._streams_changed:
                    server.stream_ids.append([i.lower().removeprefix("0x") for i in ids])
                    server._streams_changed.notify_all()
                try:
                    while True:
                        data = events.get()
                        if data is None:
                            break  # dropped: the response ends without its last chunk
                        payload = f"data:{data}\n\n".encode()
                        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    server.streams.remove(events)
                    self.close_connection = True

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                server.requests.append((url.path, self.headers.get("Authorization")))
                if url.path == "/v2/updates/price/stream":
                    self._stream(parse_qs(url.query).get("ids[]", []))
                    return
                if server.faults:
                    status = server.faults.popleft()
                    self._send(status, {"message": f"injected {status}"})
                    return
                query = parse_qs(url.query)
                history = url.path != "/v2/updates/price/latest"
                if history and server.rendezvous is not None:
                    try:
                        server.rendezvous.wait()
                    except threading.BrokenBarrierError:
                        server.rendezvous_broken = True
                        self._send(503, {"message": "rendezvous broken"})
                        return
                if history and server.down_from is not None and url.path.startswith("/v1/"):
                    args = {k: v[0] for k, v in query.items()}
                    first = int(args["from"]) if "from" in args else int(url.path.split("/")[4])
                    if first >= server.down_from:
                        self._send(503, {"detail": "down"})
                        return
                if url.path == "/v1/shims/tradingview/history":
                    args = {k: v[0] for k, v in query.items()}
                    if args.get("symbol") not in SYMBOLS or args.get("resolution") not in RESOLUTIONS:
                        self._send(200, {"s": "error", "errmsg": f"unknown symbol or resolution {args}"})
                        return
                    self._send(200, server.bars(args["symbol"], args["resolution"], int(args["from"]), int(args["to"])))
                    return
                if url.path.startswith("/v1/updates/price/"):
                    start, _, interval = url.path.removeprefix("/v1/updates/price/").partition("/")
                    ids = [i.lower().removeprefix("0x") for i in query.get("ids", [])]
                    if not ids or not interval or int(interval) > 60:
                        self._send(400, {"detail": "ids required; the interval may not exceed 60 seconds"})
                        return
                    found = server.updates(ids, int(start), int(interval))
                    self._send(200 if found else 404, found or {"detail": "Price updates not found"})
                    return
                ids = query.get("ids[]", [])
                tail = url.path.removeprefix("/v2/updates/price/")
                if not url.path.startswith("/v2/updates/price/") or not ids:
                    self._send(400, {"message": "bad request"})
                    return
                when = server.now if tail == "latest" else int(tail)
                if when in server.missing:
                    self._send(404, {"message": "Price ids not found"})
                    return
                ids = [i.lower().removeprefix("0x") for i in ids]
                self._send(200, {"binary": {"encoding": "hex", "data": ["00"]}, "parsed": [server.entry(i, when) for i in ids]})

        return Handler
