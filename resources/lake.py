"""The lake as a resource: where COORDINATOR_HOME is, handing out `Lake` objects."""

import dagster as dg

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.lake.store import Lake


class LakeResource(dg.ConfigurableResource):
    home: str

    def get(self, contract: CrunchContract) -> Lake:
        return Lake.for_contract(self.home, contract)
