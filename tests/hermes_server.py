"""A loopback Pyth Hermes-shaped HTTP server: `/v2/updates/price/latest` and
`/v2/updates/price/{publish_time}` with `ids[]=` and `parsed=true`, answering in Hermes' JSON
(`{"binary": ..., "parsed": [{"id", "price": {"price", "conf", "expo", "publish_time"}, ...}]}`).
Prices are a deterministic function of (id, second); faults are queued per request."""

from __future__ import annotations

import json
from collections import deque
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.loopback_server import LoopbackServer

EXPO = -8


class HermesServer(LoopbackServer):
    def __init__(self, now: int):
        self.now = now  # unix seconds the "latest" answer is published at
        self.faults: deque[int] = deque()
        self.missing: set[int] = set()  # publish times with no update (404)
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization header)
        self._start_server()

    @staticmethod
    def price(feed_id: str, publish_time: int) -> int:
        base = 6_500_000_000_000 if feed_id.startswith("e62d") else 300_000_000_000
        return base + (publish_time % 3600) * 12_345

    def entry(self, feed_id: str, publish_time: int) -> dict:
        price = {"price": str(self.price(feed_id, publish_time)), "conf": "1000000", "expo": EXPO, "publish_time": publish_time}
        return {"id": feed_id, "price": price, "ema_price": price, "metadata": {"slot": publish_time, "proof_available_time": publish_time + 1}}

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

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                server.requests.append((url.path, self.headers.get("Authorization")))
                if server.faults:
                    status = server.faults.popleft()
                    self._send(status, {"message": f"injected {status}"})
                    return
                ids = parse_qs(url.query).get("ids[]", [])
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
