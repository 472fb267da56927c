"""Density trackers as a resource: the models of MODELS_MANIFEST with crunch-synth's tracker
interface (`tick`, `predict_all`), run in the run's own process by a `DensityRoundDriver`.

A run opens a driver and closes it at its end; the trackers do not outlast the run, so every
run's first tick carries the warm-up history the profiles need (a restarted model, in Synth's
terms). Out-of-process, sandboxed trackers (the runner service) are not wired for densities yet.
"""

from __future__ import annotations

import dagster as dg

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.models.density_rounds import DensityRoundDriver, load_trackers
from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.models.runner import ModelSpec


class DensityTrackers(dg.ConfigurableResource):
    # Path of a JSON model manifest (entrypoints `module:Class` of trackers).
    manifest: str = ""

    def specs(self) -> list[ModelSpec]:
        return load_manifest(self.manifest)

    def open(self, contract: CrunchContract) -> DensityRoundDriver:
        """A driver over freshly instantiated trackers; the caller closes it."""
        return DensityRoundDriver(load_trackers(self.specs()), contract.prediction_profiles)
