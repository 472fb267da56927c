"""The tournament's models as a resource: the manifest's entries, each answering
`predict(features)` once per sample in its own worker process (the runner service at
MODEL_RUNNER_URL, or sandboxed workers the run starts), never in the run's own process."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.models.runner import ModelSpec
from coordinator_dagster.settings import load_settings
from coordinator_dagster.tournament_models import TournamentRunner, open_runner


class TournamentModels(dg.ConfigurableResource):
    manifest: str = ""  # MODELS_MANIFEST; empty: the node's example models
    runner_url: str = ""  # MODEL_RUNNER_URL; empty: the run starts the workers itself
    timeout_seconds: float = 5.0  # MODEL_TIMEOUT_SECONDS, per call (one sample of one model)

    def specs(self) -> list[ModelSpec]:
        return load_manifest(self.manifest or None)

    @contextmanager
    def runner(self) -> Iterator[TournamentRunner]:
        # The sandbox and worker limits are the node's settings; where and how long, this resource's.
        settings = load_settings().model_copy(update={"model_runner_url": self.runner_url, "model_timeout_seconds": self.timeout_seconds})
        runner = open_runner(settings, self.specs())
        try:
            yield runner
        finally:
            runner.close()
