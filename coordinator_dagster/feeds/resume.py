"""Resuming feed backfills: which hours of a range are already complete, and the spans of the
others still to fetch.

An hour is complete when the newest record of it that Dagster holds (a materialization of
`feed_records` for that hour) says the data was fetched through the hour's end: every
materialization carries `closed_through`, the moment up to which candles had closed when it was
written. An hour written while it was still filling, or by a writer that does not say (the live
listener, earlier versions), is not complete and is fetched again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence

from coordinator_dagster.windows import window_start

HOUR = dt.timedelta(hours=1)
CLOSED_THROUGH = "closed_through"  # the metadata entry every feed_records materialization carries


def complete_hours(closed_through: Mapping[str, dt.datetime | None]) -> set[str]:
    """The hour keys whose newest materialization was fetched through the hour's end.

    `closed_through` maps an hour key to the `closed_through` of its newest materialization (None
    if it has none, or its newest one does not say).
    >>> t = dt.datetime(2026, 11, 5, 12, tzinfo=dt.timezone.utc)
    >>> sorted(complete_hours({"2026-11-05-11:00": t, "2026-11-05-12:00": t, "2026-11-05-10:00": None}))
    ['2026-11-05-11:00']
    """
    return {key for key, through in closed_through.items() if through is not None and window_start(key) + HOUR <= through}


def spans_to_fetch(keys: Sequence[str], complete: set[str], chunk: dt.timedelta) -> list[tuple[dt.datetime, dt.datetime]]:
    """[start, end) spans covering the hours of `keys` (in order, consecutive) not in `complete`:
    each run of missing hours, cut into pieces of at most `chunk` (a day is fetched and written
    as one piece, so a failure loses at most one piece)."""
    return [piece for start, end in _missing_runs(keys, complete) for piece in _cut(start, end, chunk)]


def _missing_runs(keys: Sequence[str], complete: set[str]) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    run_start: dt.datetime | None = None
    for key in keys:
        if key in complete:
            if run_start is not None:
                yield run_start, window_start(key)
                run_start = None
        elif run_start is None:
            run_start = window_start(key)
    if run_start is not None:
        yield run_start, window_start(keys[-1]) + HOUR


def _cut(start: dt.datetime, end: dt.datetime, chunk: dt.timedelta) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    while start < end:
        yield start, min(start + chunk, end)
        start += chunk
