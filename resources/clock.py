"""The wall clock as a resource, so tests and replays can pin "now"."""

import datetime as dt

import dagster as dg


class ClockResource(dg.ConfigurableResource):
    fixed_now: str = ""  # ISO timestamp; empty means the real clock

    def now(self) -> dt.datetime:
        if self.fixed_now:
            ts = dt.datetime.fromisoformat(self.fixed_now)
            return ts if ts.tzinfo else ts.replace(tzinfo=dt.timezone.utc)
        return dt.datetime.now(dt.timezone.utc)
