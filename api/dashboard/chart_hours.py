"""The predictions chart's hours, each decoded once per version of its files and held in memory.

A chart page reads a handful of hour partitions (predictions joined with their scores). Asking
DuckDB for them on every request costs milliseconds per file, most of it fixed (opening the file,
its footer, scheduling the scan) however few rows the page keeps; rendering a thousand rows as
JSON costs as much again. So each hour is read once (all models, every chart column, in the
chart's order, also grouped by model) and kept with the identity (inode, size, mtime, ctime) of
its files (predictions, scores and, on a trading node, fills), and each row is rendered the
first time a page shows it; a request `stat`s the hours it needs and picks its models' rows from the hours it finds current. An hour whose
predictions or scores file was replaced (a new inode through the atomic rename) is read again,
so an answer is never older than the files. The identities are taken before the read: a file
replaced during it leaves an old identity stored, and the next request reads the hour again.

At most `MAX_HOURS` hours are held (least recently used go first): a few megabytes each for
50 models × 2 scopes × one-minute rounds, so the API's memory stays bounded whatever the range.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from coordinator_dagster.lake.memory import stat_identity

MAX_HOURS = 24
# The model's place in the chart's row (see prediction_chart.COLUMNS); the raw round time
# follows the row's fields when it is read.
MODEL = 0


def _micros(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(microseconds=1)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class DecodedHour:
    """One hour's chart rows in the chart's order (round time, model, scope, prediction), with
    each row's round time (µs since the epoch) and each model's row numbers. Read-only once built
    (but for `texts`, filled as rows are first rendered): shared by every request."""

    rows: list[tuple]
    micros: list[int]
    by_model: dict[str, list[int]]
    # render key -> each row's JSON text once rendered (None until then)
    rendered: dict[str, list[str | None]] = field(default_factory=dict)

    @classmethod
    def of(cls, read: list[tuple]) -> DecodedHour:
        by_model: dict[str, list[int]] = {}
        for i, row in enumerate(read):
            by_model.setdefault(row[MODEL], []).append(i)
        return cls([row[:-1] for row in read], [_micros(row[-1]) for row in read], by_model)

    def numbers(self, ids: list[str] | None, start: dt.datetime | None, end: dt.datetime | None) -> Sequence[int]:
        """Row numbers of models `ids` with round times in [start, end), in the chart's order."""
        if ids is None:
            numbers: Sequence[int] = range(len(self.rows))
        else:
            picked = [self.by_model[m] for m in dict.fromkeys(ids) if m in self.by_model]
            # Row numbers follow the chart's order: sorting them merges the models' rows.
            numbers = picked[0] if len(picked) == 1 else sorted(i for rows in picked for i in rows)
        low = _micros(start) if start is not None else None
        high = _micros(end) if end is not None else None
        if low is not None and self.micros and self.micros[0] >= low:
            low = None  # the whole hour is after the start
        if high is not None and self.micros and self.micros[-1] < high:
            high = None  # ... and before the end
        if low is None and high is None:
            return numbers
        return [i for i in numbers if (low is None or self.micros[i] >= low) and (high is None or self.micros[i] < high)]

    def texts(self, numbers: Sequence[int], key: str, render: Callable[[tuple], str]) -> list[str]:
        """The rows `numbers` rendered by `render` (named `key`: one renderer per key), each row
        rendered once for the hour's life."""
        done = self.rendered.get(key)
        if done is None:
            done = self.rendered.setdefault(key, [None] * len(self.rows))
        out = []
        for i in numbers:
            text = done[i]
            if text is None:
                text = done[i] = render(self.rows[i])
            out.append(text)
        return out


class ChartHours:
    """Decoded hours keyed by (predictions file, scores file, fills file). Thread-safe: the chart route runs
    in the thread pool; two requests missing the same hour at once may both read it."""

    def __init__(self, max_hours: int = MAX_HOURS):
        self.max_hours = max_hours
        self._lock = threading.Lock()
        self._hours: OrderedDict[tuple[str, str | None, str | None], tuple[tuple, DecodedHour]] = OrderedDict()

    def hour(
        self, predictions: str, scores: str | None, read: Callable[[], list[tuple]], fills: str | None = None, identity: tuple | None = None
    ) -> DecodedHour:
        """The hour's decoded rows, read with `read` when not held or out of date (`identity`:
        the files' identities as the caller just took them, else they are taken here)."""
        key = (predictions, scores, fills)
        if identity is None:
            identity = (stat_identity(predictions), stat_identity(scores) if scores else None, stat_identity(fills) if fills else None)
        with self._lock:
            held = self._hours.get(key)
            if held is not None and held[0] == identity:
                self._hours.move_to_end(key)
                return held[1]
        decoded = DecodedHour.of(read())
        with self._lock:
            self._hours[key] = (identity, decoded)
            self._hours.move_to_end(key)
            while len(self._hours) > self.max_hours:
                self._hours.popitem(last=False)
        return decoded

    def __len__(self) -> int:
        return len(self._hours)
