"""The model runner as a resource: which models are registered and how a round is run."""

import json
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg
from pydantic import BaseModel

from coordinator_dagster.runner import EXAMPLE_MODELS, InProcessRunner, ModelSpec


def load_manifest(path: str) -> list[ModelSpec]:
    """A JSON list of {model_id, name, cruncher, cruncher_index, entrypoint}, with clear errors."""
    try:
        entries = json.loads(Path(path).read_text())
        specs = [ModelSpec(**entry) for entry in entries]
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"model manifest {path}: {exc}") from exc
    ids = [spec.model_id for spec in specs]
    if len(ids) != len(set(ids)):
        raise ValueError(f"model manifest {path}: duplicate model ids in {ids}")
    return specs


class ModelRunnerResource(dg.ConfigurableResource, ABC):
    # Path of a JSON model manifest; empty registers the three example models.
    manifest: str = ""
    timeout_seconds: float = 5.0

    def specs(self) -> list[ModelSpec]:
        return load_manifest(self.manifest) if self.manifest else list(EXAMPLE_MODELS)

    @abstractmethod
    def open(self, output_type: type[BaseModel]) -> InProcessRunner:
        """A runner for this run's rounds; the caller closes it."""


class InProcessModelRunner(ModelRunnerResource):
    """Models as objects in the run's own process (their state lasts for the run)."""

    def open(self, output_type: type[BaseModel]) -> InProcessRunner:
        return InProcessRunner(self.specs(), output_type, self.timeout_seconds)
