"""Prebuilt answers served without FastAPI's per-request machinery, when a request gives none of
the route's own parameters.

What belongs here: the `fast` decorator a route handler carries to say how its default answer
is had, and the `FastLane` middleware that serves it. The answers themselves stay with their
routes (`api.prebuilt`).

The dashboard reads the leaderboard, the models, the schema, the checkpoints and emissions on
every page, each time with a new query string (`projectIds`, `start`, `end`) that these routes
do not read. Their answers are prebuilt bytes, so what a request costs is FastAPI: routing,
resolving dependencies, validating parameters, building a `Response` (about a quarter of a
millisecond of a worker's CPU, more than the rest together). A request that gives none of
the parameters its route reads gets the route's default answer whatever else it sends; the lane
finds the route as the router would (the first GET route whose path matches), asks the route's
own `fast` function for that answer and sends it with the headers FastAPI would send. Anything
else (a parameter the route reads, a path the lane has no answer for: a 404, a 422) goes on to
FastAPI, so the OpenAPI schema, validation and errors stay FastAPI's. The lane sits inside the
key check and the response cache (`api.app`), so its answers are guarded and cached as any.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api.cache import query_names

# The default answer of a route: (app.state, path parameters) -> the body, or None when FastAPI
# must answer (not found, say).
FastBody = Callable[[Any, dict[str, str]], Awaitable[bytes | None]]
FAST_ANSWERS: dict[Callable[..., Any], FastBody] = {}
# Paths remembered with the route they reach (checkpoint ids make paths many: bounded).
MAX_PATHS = 4096
_HEADERS = [(b"content-type", b"application/json")]


def fast(body: FastBody) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a GET route handler (under `@router.get`) whose answer, when a request gives none
    of its query parameters, is `await body(app.state, path_params)` as JSON bytes."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        FAST_ANSWERS[endpoint] = body
        return endpoint

    return register


class FastLane:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]):
        self.app = app
        self.routes = routes  # the mounted routes, in the order the router tries them
        self._paths: dict[str, tuple[FastBody, frozenset[str], dict[str, str]] | None] = {}

    def _match(self, path: str) -> tuple[FastBody, frozenset[str], dict[str, str]] | None:
        if path in self._paths:
            return self._paths[path]
        found = None
        for route in self.routes:
            regex = getattr(route, "path_regex", None)
            methods = getattr(route, "methods", None)
            if regex is None or (methods is not None and "GET" not in methods):
                continue
            matched = regex.match(path)
            if matched is None:
                continue
            body = FAST_ANSWERS.get(route.endpoint) if isinstance(route, APIRoute) else None
            if body is not None:
                found = (body, query_names(route.dependant), matched.groupdict())
            break
        if len(self._paths) >= MAX_PATHS:
            self._paths.clear()
        self._paths[path] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            found = self._match(scope["path"])
            if found is not None:
                body, reads, params = found
                query = scope.get("query_string", b"")
                if not query or not reads or not reads.intersection(
                    name for name, _ in urllib.parse.parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                ):
                    content = await body(scope["app"].state, params)
                    if content is not None:
                        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(content)).encode()), *_HEADERS]})
                        await send({"type": "http.response.body", "body": content})
                        return
        await self.app(scope, receive, send)
