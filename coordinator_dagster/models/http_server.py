"""HTTP/JSON front end of the model runner service (`coordinator models serve`).

Plain `http.server` on loopback: five routes of blocking work (a round waits for worker
processes), which a thread per request serves simply; the service process then imports neither
Dagster nor an ASGI stack and is up in well under a second.

    GET    /health                     {"status": "ok", "models": n, "manifest": ..., "manifest_error": ...}
    GET    /models                     {"models": [{model_id, name, cruncher, cruncher_index, entrypoint,
                                        status, loaded_at, consecutive_failures, last_error, ...}]}
    POST   /predict                    {"session": "live", "inputs": [{"payload": {...},
                                        "horizon_seconds": h, "step_seconds": s}, ...]}
                                        -> {"models": [...], "results": [[outcome, ...], ...]}
    POST   /tournament/predict         {"samples": [{...}, ...]}: every live model's `predict(features)`
                                       once per sample -> {"models": [...], "results": {model_id: [row, ...]}}
    POST   /sessions                   a fresh pool for a replay -> {"session": id, "models": [...]}
    DELETE /sessions/<id>              stop that pool's workers
    PUT    /assignment                 {"runners": [url, ...], "index": i}: serve only the models
                                        `shares.owner` gives runner i of the node's runners

Inputs of one request are run in order, one round after the other. The live session re-reads
the manifest before each request. Errors are JSON `{"error": ...}` with a 4xx status; a 500 means
a bug in the runner, never something a client or a model did.

Every route needs `Authorization: Bearer <MODEL_RUNNER_TOKEN>` (compared in constant time), except
`GET /health` without it, which answers only `{"status": "ok"}` (for readiness checks). Bodies
are decoded within size and depth bounds before parsing; sessions and workers are capped
(`ServiceLimits`).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import socket
import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from coordinator_dagster.models.manifest import manifest_entry
from coordinator_dagster.models.safe_json import UnsafeJSON, loads_bounded
from coordinator_dagster.models.service import LIVE, CapacityError, ModelService, outcome_json
from coordinator_dagster.models.tournament_calls import predict_samples

MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_INPUTS_PER_REQUEST = 10_000
MAX_REQUEST_DEPTH = 32  # a round input is a few levels deep (payload -> candles -> candle)
MAX_SECONDS = 366 * 24 * 3600  # horizon and step: at most a year
MAX_SESSION_ID = 100
MAX_RUNNERS = 64

log = logging.getLogger("coordinator.models")


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _seconds(value: Any, name: str) -> int:
    """A whole number of seconds in [0, MAX_SECONDS] (1e999, true, "60" and 1.5 are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError(f"{name} must be a whole number of seconds, got {value!r}")
    if not 0 <= value <= MAX_SECONDS:
        raise ValueError(f"{name} must be between 0 and {MAX_SECONDS}, got {value!r}")
    return int(value)


def _parse_inputs(body: Any) -> tuple[str, list[tuple[dict, int, int]]]:
    if not isinstance(body, dict):
        raise RequestError(400, "body must be a JSON object")
    session = body.get("session", LIVE)
    inputs = body.get("inputs")
    if not isinstance(session, str) or not isinstance(inputs, list):
        raise RequestError(400, "body needs 'inputs' (a list) and optionally 'session' (a string)")
    if len(session) > MAX_SESSION_ID:
        raise RequestError(400, f"session ids are at most {MAX_SESSION_ID} characters")
    if len(inputs) > MAX_INPUTS_PER_REQUEST:
        raise RequestError(413, f"at most {MAX_INPUTS_PER_REQUEST} inputs per request")
    parsed = []
    for position, item in enumerate(inputs):
        try:
            payload, horizon, step = item["payload"], item["horizon_seconds"], item["step_seconds"]
            if not isinstance(payload, dict) or not isinstance(payload.get("subject"), str):
                raise TypeError("payload must be an object with a 'subject'")
            parsed.append((payload, _seconds(horizon, "horizon_seconds"), _seconds(step, "step_seconds")))
        except (KeyError, TypeError, ValueError) as exc:
            raise RequestError(400, f"inputs[{position}]: needs payload (with subject), horizon_seconds, step_seconds: {exc}") from None
    return session, parsed


def _parse_samples(body: Any) -> list[dict[str, Any]]:
    samples = body.get("samples") if isinstance(body, dict) else None
    if not isinstance(samples, list) or not samples or not all(isinstance(sample, dict) for sample in samples):
        raise RequestError(400, "body must be {'samples': [{...}, ...]} with at least one sample object")
    return samples


def _parse_assignment(body: Any) -> tuple[list[str], int]:
    runners = body.get("runners") if isinstance(body, dict) else None
    index = body.get("index") if isinstance(body, dict) else None
    if not isinstance(runners, list) or not 1 <= len(runners) <= MAX_RUNNERS or not all(isinstance(r, str) and 0 < len(r) <= 300 for r in runners):
        raise RequestError(400, f"'runners' must be a list of 1 to {MAX_RUNNERS} runner URLs")
    if type(index) is not int or not 0 <= index < len(runners):
        raise RequestError(400, "'index' must be this runner's position in 'runners'")
    return runners, index


def _models_body(service: ModelService) -> dict[str, Any]:
    """This runner's models, the whole manifest (what the node's other runners serve), its share."""
    runners, index = service.assignment or (None, None)
    return {
        "models": service.live.describe(),
        "manifest": [manifest_entry(spec) for spec in service.manifest_specs],
        "assignment": None if runners is None else {"runners": list(runners), "index": index},
        "manifest_error": service.manifest_error,
    }


def read_token(token_file: str | None = None) -> str:
    """The runner's API token: the first line of `token_file`, else MODEL_RUNNER_TOKEN ('' if neither)."""
    if token_file:
        return Path(token_file).read_text().strip()
    return os.environ.get("MODEL_RUNNER_TOKEN", "").strip()


class Handler(BaseHTTPRequestHandler):
    server: "ModelHTTPServer"
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # buffered: headers and body leave in one write, flushed after each request

    def setup(self) -> None:
        super().setup()
        # Small request/answer exchanges: without this, Nagle's algorithm and delayed ACKs add
        # ~40 ms to every round (measured on 2 busy cores: 52 ms per 10-model round without it, 7 ms with it).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise RequestError(400, "bad Content-Length") from None
        if length < 0:
            raise RequestError(400, "bad Content-Length")
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True  # its body is not read
            raise RequestError(413, f"request body over {MAX_REQUEST_BYTES} bytes")
        raw = self.rfile.read(length) if length else b""
        try:
            return loads_bounded(raw, MAX_REQUEST_BYTES, MAX_REQUEST_DEPTH) if raw else {}
        except UnsafeJSON as exc:
            raise RequestError(400, f"body is not JSON within limits: {exc}") from None

    def _authorized(self) -> bool:
        token = self.server.token
        if not token:  # started with --insecure-no-token
            return True
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    def _dispatch(self, method: str) -> None:
        service = self.server.service
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            if not self._authorized():
                if method == "GET" and path == "/health":
                    self._send(200, {"status": "ok"})  # readiness only: nothing about the node
                    return
                self.close_connection = True
                raise RequestError(401, "missing or wrong token: send 'Authorization: Bearer <MODEL_RUNNER_TOKEN>'")
            if method == "GET" and path == "/health":
                service.refresh()
                self._send(200, {"status": "ok", "models": len(service.live.slots), "manifest": service.manifest or None, "manifest_error": service.manifest_error, "sessions": len(service.sessions), "sandbox": service.settings.sandbox.enabled})
            elif method == "GET" and path == "/models":
                service.refresh()
                self._send(200, _models_body(service))
            elif method == "PUT" and path == "/assignment":
                runners, index = _parse_assignment(self._body())
                service.refresh()
                service.assign(runners, index)
                self._send(200, _models_body(service))
            elif method == "POST" and path == "/predict":
                session, inputs = _parse_inputs(self._body())
                if session == LIVE:
                    service.refresh()
                try:
                    pool = service.pool(session)
                except KeyError as exc:
                    raise RequestError(404, str(exc)) from None
                results = [[outcome_json(o) for o in pool.predict(payload, horizon, step)] for payload, horizon, step in inputs]
                self._send(200, {"session": session, "models": pool.describe(), "results": results})
            elif method == "POST" and path == "/tournament/predict":
                samples = _parse_samples(self._body())
                service.refresh()
                results = predict_samples(service.live, samples)
                self._send(200, {"models": service.live.describe(), "results": {mid: [outcome_json(o) for o in rows] for mid, rows in results.items()}})
            elif method == "POST" and path == "/sessions":
                self._body()
                try:
                    sid, pool = service.open_session()
                except CapacityError as exc:
                    raise RequestError(429, str(exc)) from None
                self._send(201, {"session": sid, "models": pool.describe()})
            elif method == "DELETE" and path.startswith("/sessions/"):
                sid = path.removeprefix("/sessions/")
                if not service.close_session(sid):
                    raise RequestError(404, f"no session {sid!r}")
                self._send(200, {"session": sid, "closed": True})
            else:
                raise RequestError(404, f"no route {method} {path}")
        except RequestError as exc:
            self._send(exc.status, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - answer with the error instead of dropping the connection
            log.exception("request %s %s failed", method, path)
            self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")


class ModelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: ModelService, token: str):
        self.service = service
        self.token = token
        super().__init__(address, Handler)


def serve(service: ModelService, host: str, port: int, token: str, ready: threading.Event | None = None, announce=print) -> None:
    """Serve until SIGINT/SIGTERM (or `server.shutdown()`), then stop every worker. An empty
    `token` serves without authentication (`--insecure-no-token`)."""
    import signal

    server = ModelHTTPServer((host, port), service, token)
    bound_host, bound_port = server.server_address[:2]

    def stop(signum, frame):  # noqa: ARG001
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    sandbox = "sandboxed (bubblewrap)" if service.settings.sandbox.enabled else f"NOT sandboxed: {service.settings.sandbox.reason}"
    announce(f"model runner listening on http://{bound_host}:{bound_port} ({len(service.live.slots)} models, {sandbox})")
    if ready is not None:
        ready.set()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        service.close()
        announce("model runner stopped")
