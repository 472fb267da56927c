"""Density trackers as a resource: the models of MODELS_MANIFEST with crunch-synth's tracker
interface (`tick`, `predict_all`), asked a run's profile rounds through a driver.

By default each tracker runs in its own worker process the run starts (`WorkerDensityDriver`:
the runner service's worker and sandbox, MODEL_SANDBOX and the MODEL_* limits), so the run's
process never imports participant code; `in_process=True` loads them into the run's process
(`DensityRoundDriver`: trusted in-house trackers and fast tests). Either way the trackers last
for the run only: every run's first tick carries the warm-up history the profiles need, as for a
restarted model. The runner service's HTTP routes (MODEL_RUNNER_URL) do not carry density rounds.
"""

from __future__ import annotations

import dagster as dg

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.models.density_rounds import DensityRoundDriver, load_trackers
from coordinator_dagster.models.density_workers import WorkerDensityDriver
from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.models.runner import ModelSpec
from coordinator_dagster.settings import load_settings
from coordinator_dagster.tournament_models import pool_settings


class DensityTrackers(dg.ConfigurableResource):
    # Path of a JSON model manifest (entrypoints `module:Class` of trackers).
    manifest: str = ""
    in_process: bool = False

    def specs(self) -> list[ModelSpec]:
        return load_manifest(self.manifest)

    def open(self, contract: CrunchContract) -> DensityRoundDriver | WorkerDensityDriver:
        """A driver over fresh trackers; the caller closes it."""
        if self.in_process:
            return DensityRoundDriver(load_trackers(self.specs()), contract.prediction_profiles)
        return WorkerDensityDriver(self.specs(), contract.prediction_profiles, pool_settings(load_settings()))
