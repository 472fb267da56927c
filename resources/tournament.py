"""The tournament's models as a resource: the manifest's classes, each answering `predict(features)`
once per sample, called in the run's own process."""

from typing import Any

import dagster as dg

from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.models.runner import ModelSpec
from coordinator_dagster.tournament_rounds import load_models


class TournamentModels(dg.ConfigurableResource):
    manifest: str = ""  # MODELS_MANIFEST; empty: the node's example models

    def specs(self) -> list[ModelSpec]:
        return load_manifest(self.manifest or None)

    def models(self) -> dict[str, Any]:
        return load_models(self.specs())
