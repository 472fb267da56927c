"""A cache of rendered GET answers that is invalidated by the lake itself, not by a timer.

Each cached answer is stored with the identity (inode, size, mtime, ctime) of every file of the
lake tables it was computed from, taken before the answer was computed. A request is served from
the cache only if those identities are unchanged; a partition replaced by a run (a new inode
through the atomic rename) or a new checkpoint event makes the next request compute afresh. So a
cached answer is never older than the files, and the hot reports (leaderboard, emission, the
first predictions page) skip routing, DuckDB and JSON rendering while nothing changes.

An answer is keyed on the query parameters its route reads, not on the raw query string: a
dashboard sends `projectIds`, `start` and `end` to every route, and a route that does not read
them gives the same answer whatever they are. A request with `Cache-Control: no-cache` is
computed afresh (and stored), as HTTP has it.

Only 200 answers are cached, only for the routes listed in `CACHED`. The key check
(`api.middleware.Authenticate`) runs before this cache, so a cached answer is as guarded as a
computed one; answers for admins (which show operator details) are cached apart from the others.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Sequence

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordinator_dagster.lake.memory import table_identity
from coordinator_dagster.lake.store import Lake

# path pattern -> tables it reads (routes that read only the contract, fixed for the app's life,
# read none). Checkpoint answers may name models (the dashboard's ranking meta); the dashboard's
# leaderboard carries metric means over the snapshots and the models' names.
_CHECKPOINTS = ("checkpoints", "checkpoint_events", "models")
CACHED: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(r"^/reports/leaderboard$"), ("leaderboard", "models", "snapshots", "late_scores")),
    (re.compile(r"^/reports/models$"), ("models",)),
    (re.compile(r"^/reports/models/global$"), ("snapshots", "leaderboard", "models")),
    (re.compile(r"^/reports/models/params$"), ()),
    (re.compile(r"^/reports/schema(/[^/]+)?$"), ()),
    # First match wins: the review (api.routes.checkpoint_review) also reads the approvals.
    (re.compile(r"^/reports/checkpoints/[^/]+/diff$"), (*_CHECKPOINTS, "checkpoint_approvals")),
    (re.compile(r"^/reports/checkpoints/[^/]+/explain$"), (*_CHECKPOINTS, "snapshots")),
    # Prizes are served only for an approved emission when approval is required.
    (re.compile(r"^/reports/checkpoints/[^/]+/prizes$"), (*_CHECKPOINTS, "checkpoint_approvals")),
    (re.compile(r"^(/v1)?/reports/checkpoints(/[^/]+)*$"), _CHECKPOINTS),
    (re.compile(r"^/reports/emissions/latest$"), _CHECKPOINTS),
    (re.compile(r"^/emission/cli-format$"), _CHECKPOINTS),
    # The paginated form only: the dashboard's array can be megabytes.
    (re.compile(r"^/v1/reports/predictions$"), ("predictions", "scores", "trading_fills")),
]
# Audit bundles are files beside the lake's tables (written after the checkpoint they bundle):
# no table identity says when one appears, so they are always served afresh.
UNCACHED = re.compile(r"^/reports/checkpoints/[^/]+/bundle$")
MAX_ENTRIES = 512
# How many computations for older files a request waits out before computing its own.
MAX_WAITS = 2
# Listing an hourly table's files costs ~0.6 ms per thousand-file table; under 50 concurrent
# clients that listing, not the answer, becomes the limit. Hourly tables are written by pipeline
# runs, so their identity is re-taken at most every IDENTITY_TTL seconds: a cached predictions
# page can lag a partition rewrite by at most that long. Checkpoint tables (which the API itself
# writes, and whose readers expect to see their own write) are always checked exactly.
IDENTITY_TTL = 0.02


def query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route reads, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= query_names(sub)
    return frozenset(names)


class ResponseCache:
    def __init__(
        self,
        app: ASGIApp,
        lake: Lake,
        routes: Sequence[BaseRoute] = (),
        clock: Callable[[], float] = time.monotonic,
        identities: Callable[[str], tuple] | None = None,
    ):
        self.app = app
        self.clock = clock  # tests pass their own to step past IDENTITY_TTL without sleeping
        self.lake = lake
        # The lake reader's listing (`coordinator_dagster.lake.memory.Identities`), when given:
        # the hourly tables are then listed once for both instead of once each.
        self.identities = identities
        self.routes = routes  # the app's own list: the query parameters each route reads
        self._names: dict[int, frozenset[str]] = {}
        self._entries: OrderedDict[tuple, tuple[tuple, Message, list[bytes]]] = OrderedDict()
        self._lock = threading.Lock()
        self._memo: dict[str, tuple[float, tuple]] = {}
        self._flights: dict[tuple, tuple[tuple, asyncio.Future]] = {}

    def _identity(self, name: str) -> tuple:
        if self.identities is not None:
            return self.identities(name)
        if self.lake.table(name).layout != "window":
            return table_identity(self.lake, name)
        now = self.clock()
        memo = self._memo.get(name)
        if memo is not None and now - memo[0] < IDENTITY_TTL:
            return memo[1]
        identity = table_identity(self.lake, name)
        self._memo[name] = (now, identity)
        return identity

    def _identities_of(self, tables: tuple[str, ...]) -> tuple:
        if self.identities is not None and hasattr(self.identities, "batch"):
            with self.identities.batch():  # one read of the lake's file events for all of them
                return tuple(self._identity(name) for name in tables)
        return tuple(self._identity(name) for name in tables)

    def _query_key(self, path: str, query_string: bytes) -> tuple | bytes:
        """The query parameters the matching route reads, in a canonical order; the raw query
        string when no route is known (nothing is left out that could change the answer)."""
        route = next((r for r in self.routes if isinstance(r, APIRoute) and "GET" in (r.methods or ()) and r.path_regex.match(path)), None)
        if route is None:
            return query_string
        names = self._names.get(id(route))
        if names is None:
            names = self._names[id(route)] = query_names(route.dependant)
        pairs = urllib.parse.parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        # Stable sort by name: repeated values of one parameter keep their order.
        return tuple(sorted(((k, v) for k, v in pairs if k in names), key=lambda kv: kv[0]))

    def _route(self, path: str) -> tuple[str, ...] | None:
        if UNCACHED.match(path):
            return None
        for pattern, tables in CACHED:
            if pattern.match(path):
                return tables
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        tables = self._route(scope["path"])
        if tables is None:
            await self.app(scope, receive, send)
            return
        # The answer may depend on headers only through CORS, which sits outside this cache, and
        # on whether the caller is an admin (operator details), which `Authenticate` recorded.
        key = (scope["path"], self._query_key(scope["path"], scope.get("query_string", b"")), bool(scope.get("state", {}).get("is_admin")))
        fresh = any(name == b"cache-control" and b"no-cache" in value.lower() for name, value in scope.get("headers") or ())
        # Single flight: requests that find the same identity while an answer for it is being
        # computed wait for that answer instead of computing it again (a thundering herd after
        # every rewrite would otherwise queue dozens of identical DuckDB queries). One computed
        # for files that have changed since is waited for too, then the files are looked at
        # again: while a run rewrites the tables, a key is computed by one request at a time
        # instead of by every request that arrived between two rewrites.
        for waits in range(MAX_WAITS + 1):
            identity = self._identities_of(tables)
            with self._lock:
                hit = None if fresh else self._entries.get(key)
                if hit is not None and hit[0] == identity:
                    self._entries.move_to_end(key)
                    break
                flight = self._flights.get(key)
                leader = fresh or flight is None or (flight[0] != identity and waits == MAX_WAITS)
                if leader:
                    future: asyncio.Future = asyncio.get_running_loop().create_future()
                    self._flights[key] = (identity, future)
                    break
                future = flight[1]
            done = await asyncio.shield(future)
            if flight[0] == identity:
                if done is not None:
                    await self._replay(done, send)
                    return
                await self.app(scope, receive, send)  # the leader's answer was not cacheable
                return
        if hit is not None and hit[0] == identity:
            await self._replay(hit, send)
            return

        start: Message | None = None
        chunks: list[bytes] = []
        stored: tuple | None = None

        async def capture(message: Message) -> None:
            nonlocal start, stored
            if message["type"] == "http.response.start":
                # A copy: middleware outside (CORS) adds per-request headers to the message in place.
                start = {"type": message["type"], "status": message["status"], "headers": list(message.get("headers", []))}
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and start is not None and start["status"] == 200:
                    stored = (identity, start, list(chunks))
                    with self._lock:
                        self._entries[key] = stored
                        self._entries.move_to_end(key)
                        while len(self._entries) > MAX_ENTRIES:
                            self._entries.popitem(last=False)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            with self._lock:
                if self._flights.get(key, (None, None))[1] is future:
                    del self._flights[key]
            if not future.done():
                future.set_result(stored)

    @staticmethod
    async def _replay(entry: tuple, send: Send) -> None:
        _, start, chunks = entry
        await send({**start, "headers": list(start["headers"])})
        for chunk in chunks[:-1]:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": chunks[-1] if chunks else b""})
