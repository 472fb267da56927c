"""`Lake`: the Parquet lake of one node home, read through DuckDB. The one object callers use.

It is assembled from one module per concern, each saying what it holds: `layout` (tables and
where their files live), `writes` (atomic partition writes, events, locks), `reads` (partitions
into polars frames), `views` (DuckDB views, derived statuses, the catalog file), `reader`
(the API's shared connection with retried reads) and `memory` (the small tables that reader holds
in memory, and the file identities that say when to reload them).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from coordinator_dagster.lake.reader import LakeReader
from coordinator_dagster.lake.reads import LakeReads
from coordinator_dagster.lake.views import LakeViews

if TYPE_CHECKING:
    from coordinator_dagster.contracts import CrunchContract

__all__ = ["Lake"]


class Lake(LakeViews, LakeReads):
    """One home's lake: paths (`LakeLayout`), writes (`LakeWrites`), frame reads (`LakeReads`)
    and SQL (`LakeViews`)."""

    @classmethod
    def for_contract(cls, home: str | os.PathLike[str], contract: "CrunchContract") -> "Lake":
        return cls(home, window_names=contract.aggregation.windows, scoring_version=contract.scoring_version)

    def with_version(self, scoring_version: str) -> "Lake":
        """The same lake, reading and writing another scoring version's scores and snapshots."""
        return Lake(self.home, self.window_names, scoring_version, storage=self.storage)

    def reader(self) -> LakeReader:
        return LakeReader(self)
