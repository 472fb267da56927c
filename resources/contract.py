"""The competition contract as a resource: the one `CrunchContract` object `build_defs` was given.

Not a `ConfigurableResource`: Dagster rebuilds those from their config fields for every run, so
an object built in code (a contract with a distinct scoring version, a test's contract) could not
reach the assets; it could only be reloaded from the environment. A plain resource hands the very
object to every asset, sensor and schedule of one `Definitions`, and reads nothing itself.
"""

import dagster as dg

from coordinator_dagster.contracts import CrunchContract

# Annotate a parameter `contract: Contract` in an asset or sensor to receive the contract.
Contract = dg.ResourceParam[CrunchContract]
