"""ASGI middleware and logging hooks that guard the report API before any route runs: a bounded
request body (413 with a reason), so no client can make a write route buffer an arbitrary amount
of data; the auth tiers (`Authenticate`, rules in `api.auth`), checked before the body is parsed;
and API keys kept out of the access log (`RedactKeys`)."""

from __future__ import annotations

import json
import logging
import urllib.parse

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import CHALLENGE, Tiers, key_from_scope, key_is_valid, needs_key, refusal
from api.settings import ApiSettings


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body is larger than {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False  # the server itself rejects a malformed length
            if too_big:
                await self._reject(send)
                return
            await self.app(scope, receive, send)
            return
        # No length (chunked): read at most max_bytes + 1 before deciding, then replay.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._reject(send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class Authenticate:
    """Refuses a request its tier does not allow (401) before routing, so no body is parsed, and
    records in `scope["state"]["is_admin"]` whether the caller may see operator details."""

    def __init__(self, app: ASGIApp, settings: ApiSettings, tiers: Tiers):
        self.app = app
        self.settings = settings
        self.tiers = tiers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = key_from_scope(scope.get("headers") or (), scope.get("query_string", b"")) if self.settings.api_key is not None else None
        valid = key_is_valid(self.settings, key)
        scope.setdefault("state", {})["is_admin"] = valid
        if not valid and scope["method"] != "OPTIONS":
            tier = self.tiers.of(scope["method"], scope["path"])
            if needs_key(self.settings, tier):
                body = json.dumps({"detail": refusal(tier, key)}).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                headers += [(name.lower().encode(), value.encode()) for name, value in CHALLENGE.items()]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def redact_query(target: str) -> str:
    """`/x?api_key=s3cret&a=1` → `/x?api_key=***&a=1` (any spelling that decodes to `api_key`)."""
    path, sep, query = target.partition("?")
    if not sep or "=" not in query:
        return target
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        parts.append(f"{name}=***" if eq and urllib.parse.unquote_plus(name).strip().lower() == "api_key" else part)
    return f"{path}?{'&'.join(parts)}"


class RedactKeys(logging.Filter):
    """Rewrites `?api_key=` in a log record's arguments (uvicorn's access log passes the request
    target as one of them), so a key sent in the query string never reaches a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "?" in a for a in record.args):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str) and "?" in record.msg and "=" in record.msg:
            record.msg = " ".join(redact_query(word) for word in record.msg.split(" "))
        return True


def redact_access_log(logger_name: str = "uvicorn.access") -> None:
    """Attach `RedactKeys` to the access logger once (create_app may run many times in a process)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactKeys) for f in logger.filters):
        logger.addFilter(RedactKeys())
