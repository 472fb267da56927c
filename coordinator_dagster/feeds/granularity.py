"""Feed granularities: parsing the `1s`/`1m`/`1h` spelling used by FEED_GRANULARITY and exchanges.

Only parsing and alignment live here; what each source supports is the source's business.
"""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^([1-9][0-9]*)([smhd])$")


class GranularityError(ValueError):
    """A granularity string that is not `<positive int><s|m|h|d>`."""


def granularity_seconds(granularity: str) -> int:
    """Seconds in one step of `granularity` (`"1m"` → 60); a clear error for anything else."""
    match = _PATTERN.match(granularity.strip()) if isinstance(granularity, str) else None
    if match is None:
        raise GranularityError(
            f"granularity {granularity!r} is not of the form <number><s|m|h|d>, e.g. 1s, 1m, 5m, 1h"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def floor_time(ts: dt.datetime, seconds: int) -> dt.datetime:
    """`ts` rounded down to a multiple of `seconds` since the Unix epoch (UTC)."""
    epoch = int(ts.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % seconds, tz=dt.timezone.utc)
