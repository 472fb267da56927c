"""The model runner as a resource: which models are registered and how a round is run.

Three implementations: `InProcessModelRunner` (models as objects in the run's process; tests and
`coordinator demo`), `RemoteModelRunner` (the model runner service, `coordinator models
serve`, where each model lives in a worker process that outlasts runs) and
`OrchestratorModelRunner` (models hosted by CrunchDAO's model orchestrator). All hand the asset a
`RoundRunner` (coordinator_dagster.models.runner): the registered models, `predict_round` for one
input, and `close`. The runners themselves are the core's (models/runner.py, models/client.py, models/orchestrator/).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import dagster as dg
from pydantic import BaseModel

from coordinator_dagster.models.client import open_round
from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.models.orchestrator.config import OrchestratorConfig, OrchestratorError, cruncher_indexes
from coordinator_dagster.models.orchestrator.runner import OrchestratorRunner
from coordinator_dagster.models.reference_models import REFERENCE_BASE_CLASSNAME
from coordinator_dagster.models.runner import InProcessRunner, ModelSpec, RoundRunner


class ModelRunnerResource(dg.ConfigurableResource, ABC):
    timeout_seconds: float = 5.0
    # Reference-style models: their base class by name and the feed shape they are handed.
    base_classname: str = REFERENCE_BASE_CLASSNAME
    feed_shape: str = "candle"

    @abstractmethod
    def open(self, output_type: type[BaseModel], replay: bool = False) -> RoundRunner:
        """A runner for this run's rounds; the caller closes it. `replay`: rounds from history,
        to be run on models whose state is separate from the live ones'."""


class InProcessModelRunner(ModelRunnerResource):
    """Models as objects in the run's own process (their state lasts for the run)."""

    # Path of a JSON model manifest; empty registers the three example models.
    manifest: str = ""

    def specs(self) -> list[ModelSpec]:
        return load_manifest(self.manifest)

    def open(self, output_type: type[BaseModel], replay: bool = False) -> RoundRunner:
        return InProcessRunner(self.specs(), output_type, self.timeout_seconds, self.base_classname, self.feed_shape)


class RemoteModelRunner(ModelRunnerResource):
    """The model runner service at `url` (MODEL_RUNNER_URL): models live in worker processes.

    Live runs use the service's long-lived workers; a replay gets a fresh session of workers
    created for the run and torn down after, so it neither sees nor changes live state.
    """

    url: str
    # Seconds to connect and to wait for the service beyond the models' own time limit.
    request_timeout_seconds: float = 30.0

    def open(self, output_type: type[BaseModel], replay: bool = False) -> RoundRunner:
        # A round takes at most the per-model timeout (the service enforces it), plus spawning.
        return open_round(self.url, output_type, replay=replay, timeout_seconds=self.request_timeout_seconds + self.timeout_seconds)


class OrchestratorModelRunner(ModelRunnerResource):
    """Models hosted by CrunchDAO's model orchestrator (MODEL_RUNNER=orchestrator): announced on
    its WebSocket, called over gRPC. The orchestrator keeps one instance per model, so a replay
    (which would feed the live instance history) is refused."""

    host: str
    port: int
    crunch_id: str
    cert_dir: str = ""
    crunchers_file: str = ""  # ORCHESTRATOR_CRUNCHERS
    failure_limit: int = 3
    streaks_path: str = ""

    def config(self) -> OrchestratorConfig:
        indexes = cruncher_indexes(open(self.crunchers_file, encoding="utf-8").read()) if self.crunchers_file else {}
        return OrchestratorConfig(
            host=self.host, port=self.port, crunch_id=self.crunch_id, base_classname=self.base_classname,
            timeout_seconds=self.timeout_seconds, feed_shape=self.feed_shape, cert_dir=self.cert_dir,
            cruncher_indexes=indexes, failure_limit=self.failure_limit, streaks_path=self.streaks_path,
        )

    def open(self, output_type: type[BaseModel], replay: bool = False) -> RoundRunner:
        if replay:
            raise OrchestratorError(
                "orchestrator-hosted models cannot replay history: the orchestrator keeps one live instance of each "
                "model, which a replay would feed old rounds; predict live rounds only (the predict sensor's runs)"
            )
        return OrchestratorRunner(self.config(), output_type)
