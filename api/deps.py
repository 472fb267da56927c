"""Request dependencies of the report API, exposed as `Annotated[...]` aliases for route signatures.

What belongs here: how a request gets the lake and a DuckDB connection, and the
query parameters several reports share (pagination, a time range). Report-specific filters stay
with their route; SQL building lives in `api.sql`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import duckdb
from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator

from coordinator_dagster.lake.store import Lake

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# DuckDB takes OFFSET (and offset + limit) as a BIGINT: a larger number must be a 422, not a
# failed cast (a 500).
MAX_OFFSET = 2**63 - 1 - MAX_LIMIT


def get_lake(request: Request) -> Lake:
    return request.app.state.lake


LakeDep = Annotated[Lake, Depends(get_lake)]


def get_db(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on the app's shared in-memory DuckDB (`LakeReader`): it holds no lock on the
    lake, so Dagster runs rewriting partitions never wait for the API nor the API for them."""
    cursor = request.app.state.reader.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


DbDep = Annotated[duckdb.DuckDBPyConnection, Depends(get_db)]


@dataclass(frozen=True)
class Pagination:
    limit: int
    offset: int


def get_pagination(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, 1 to {MAX_LIMIT}")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
) -> Pagination:
    return Pagination(limit=limit, offset=offset)


PaginationDep = Annotated[Pagination, Depends(get_pagination)]


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_only(value: object) -> object:
    """The schema says ISO-8601 date-time; pydantic alone would also take `0.5` as unix seconds."""
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        raise ValueError("expected an ISO-8601 date-time such as 2026-11-25T10:00:00Z, not a number")
    return value


# A query parameter's date-time: ISO-8601 only (what the OpenAPI schema documents).
IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso_only)]


@dataclass(frozen=True)
class TimeRange:
    """A half-open range `[start, end)` in UTC; either bound may be open."""

    start: dt.datetime | None
    end: dt.datetime | None


def _as_utc(name: str, value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", name), "msg": f"{name} is out of range in UTC", "input": value.isoformat()}]
        ) from None


def get_time_range(
    start: Annotated[
        IsoDateTime | None, Query(description="ISO-8601; first instant included; without an offset it is UTC")
    ] = None,
    end: Annotated[IsoDateTime | None, Query(description="ISO-8601; first instant excluded; without an offset it is UTC")] = None,
) -> TimeRange:
    start, end = _as_utc("start", start), _as_utc("end", end)
    if start is not None and end is not None and start > end:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "start"),
                    "msg": f"start ({start.isoformat()}) is after end ({end.isoformat()})",
                    "input": start.isoformat(),
                }
            ]
        )
    return TimeRange(start=start, end=end)


TimeRangeDep = Annotated[TimeRange, Depends(get_time_range)]


@contextlib.contextmanager
def get_db_cursor(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    """`get_db` for code that needs a fresh cursor mid-request (after a write)."""
    cursor = request.app.state.reader.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def _reject_unknown_query(request: Request) -> None:
    """Write routes take no query parameters besides the key: a typo must not pass silently."""
    unknown = sorted(set(request.query_params) - {"api_key"})
    if unknown:
        raise RequestValidationError(
            [{"type": "extra_forbidden", "loc": ("query", name), "msg": f"unknown query parameter {name!r}", "input": request.query_params[name]} for name in unknown]
        )


NoExtraQuery = Annotated[None, Depends(_reject_unknown_query)]
