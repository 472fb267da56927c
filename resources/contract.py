"""The competition contract as a resource: loaded once per process from `module:attr`."""

import functools

import dagster as dg

from coordinator_dagster.contracts import CrunchContract, load_contract


@functools.lru_cache(maxsize=8)
def _cached(spec: str) -> CrunchContract:
    return load_contract(spec or None)


class ContractResource(dg.ConfigurableResource):
    # `module:attr`; empty means $CRUNCH_CONFIG_MODULE, else the embedded example contract.
    spec: str = ""

    def get(self) -> CrunchContract:
        return _cached(self.spec)
