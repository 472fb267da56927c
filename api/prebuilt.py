"""Answers built once per change of the lake tables they read, and the API's JSON rendering.

What belongs here: the store of prebuilt answers (`Prebuilt`), the `prebuilt()` helper a route
awaits, and `render()` (JSON as every answer of this API is written). The builders themselves
stay with their routes.

The leaderboard, the models, the checkpoints and their emissions are read by every dashboard
page, each with a new query string (so the response cache misses), and their tables change a
few times an hour. Running a DuckDB query, validating and encoding per request costs several
milliseconds of a single worker's CPU; looking up an answer built for the current copy of the
tables costs microseconds. An answer is built, in a worker thread, from the reader's in-memory
tables (`coordinator_dagster.lake.memory`) and stored with their version numbers; each request
first checks the tables' files (`LakeReader.is_current`, a few `stat`s) and uses the stored
answer only while the files and the versions are unchanged. So an answer is never older than
the files, as with a DuckDB query per request, and the API still reads its own writes.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.lake.reader import LakeReader


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def render(content: Any) -> bytes:
    """JSON as the API writes it: compact, UTF-8; JSON has no NaN or infinity, so a non-finite
    float (a metric over one value, say) is null instead of failing the whole answer."""
    try:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except ValueError:
        return json.dumps(_finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def encoder(model: Any) -> Callable[[Any], Any]:
    """Validation and JSON-ready dump of a route's `response_model`, as FastAPI applies it to a
    route's return value (so a prebuilt answer has exactly the bytes a computed one had)."""
    adapter = TypeAdapter(model)
    return lambda value: adapter.dump_python(adapter.validate_python(value), mode="json", by_alias=True)


@dataclass(frozen=True)
class Answer:
    """A prebuilt answer: its name, the in-memory tables it reads, and how to build it."""

    name: str
    tables: tuple[str, ...]
    build: Callable[[duckdb.DuckDBPyConnection, CrunchContract], Any]


class Prebuilt:
    """Built answers of one app, each with the versions of the tables it was built from."""

    def __init__(self, reader: LakeReader, contract: CrunchContract):
        self.reader = reader
        self.contract = contract
        # name -> (table versions, answer, which build (`_starts`) stored it)
        self._built: dict[str, tuple[tuple[int, ...], Any, int]] = {}
        self._lock = threading.Lock()
        self._starts = 0  # builds begun, in order

    def current(self, answer: Answer) -> Any | None:
        """The stored answer if the files and the tables' copies are unchanged, else None. While
        another request is bringing tables or answers up to their files, the stored answer is
        the previous version's: it is served meanwhile, so a rewrite costs one load and one
        build, not a queue of requests each waiting for them."""
        found = self._built.get(answer.name)
        if found is None:
            return None
        if not answer.tables:
            return found[1]  # from the contract alone, fixed for the app's life
        # Only its own tables: a rewrite of another table leaves this answer as it is.
        if found[0] == self.reader.versions(answer.tables) and self.reader.is_current(answer.tables):
            return found[1]
        if self._lock.locked() or self.reader.loading():
            return found[1]
        return None

    def build(self, answer: Answer) -> Any:
        """Bring the tables up to their files and build the answer (once, however many requests
        missed it at the same time)."""
        waiting_since = self._starts
        with self._lock:
            found = self._built.get(answer.name)
            if found is not None and found[2] > waiting_since:
                # Built by another request that began after this one started waiting: it read
                # the files as they were after this request arrived. Building again would queue
                # every waiter behind one build per rewrite while a run keeps rewriting.
                return found[1]
            self._starts += 1
            started = self._starts
            self.reader.refresh()
            # Taken before the queries: a change meanwhile makes the next request build again.
            versions = self.reader.versions(answer.tables)
            if found is not None and found[0] == versions:
                self._built[answer.name] = (versions, found[1], started)
                return found[1]
            with self.reader.cursor() as con:
                value = answer.build(con, self.contract)
            if -1 not in versions:  # a table read from files has no version: never stored
                self._built[answer.name] = (versions, value, started)
            return value


async def answer_of(state: Any, answer: Answer) -> Any:
    """`answer` for the current files, from an app's `state`: stored, or built in a worker thread
    (the event loop keeps serving meanwhile)."""
    store: Prebuilt = state.prebuilt
    found = store.current(answer)
    if found is None:
        found = await run_in_threadpool(store.build, answer)
    return found


async def prebuilt(request: Request, answer: Answer) -> Any:
    """`answer_of` for the request's app."""
    return await answer_of(request.app.state, answer)
