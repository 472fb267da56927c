"""Running participant models for a round: registry entries, timeouts, output validation.

`validate_output` decides PENDING or FAILED for every runner. The out-of-process runner (one
worker process per model, for a live node) is `models.service`; this module's runner is the
in-process one, for tests and `coordinator demo`: each model gets its own single-thread executor
so its calls stay in order (models are stateful) and a model that hangs blocks only itself; its
later rounds are ABSENT until the call returns. Python cannot kill a thread, so a model that
never returns keeps its thread for the life of the process; the worker processes of
`models.service` remove that limit.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from coordinator_dagster.models.reference_models import REFERENCE_BASE_CLASSNAME, load_model
from coordinator_dagster.statuses import PredictionStatus

MAX_OUTPUT_BYTES = 64 * 1024


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: who it is, whose it is (with the on-chain index) and where its code is."""

    model_id: str
    name: str
    cruncher: str
    cruncher_index: int | None  # None: not known (orchestrator-hosted models); emission refuses to guess it
    entrypoint: str  # "package.module:TrackerClass"
    path: str = ""  # the model's folder, put first on its import path (empty: importable as is)


EXAMPLE_MODELS = (
    ModelSpec("momentum", "Momentum", "alice", 0, "coordinator_dagster.models.examples:MomentumTracker"),
    ModelSpec("mean-reversion", "Mean reversion", "bob", 1, "coordinator_dagster.models.examples:MeanReversionTracker"),
    ModelSpec("contrarian", "Contrarian", "carol", 2, "coordinator_dagster.models.examples:ContrarianTracker"),
)


@dataclass(frozen=True)
class Outcome:
    model_id: str
    status: PredictionStatus  # PENDING (valid answer), FAILED or ABSENT
    value: float | None
    output: str | None
    failed_reason: str | None
    latency_ms: float | None

    def __post_init__(self) -> None:
        # An outcome read back from the runner service's JSON carries the status as a string.
        object.__setattr__(self, "status", PredictionStatus(self.status))


class RoundRunner(Protocol):
    """What the predictions asset runs rounds through: this module's `InProcessRunner`, the
    runner service's `RemoteRound` (models/client.py) or `OrchestratorRunner` (models/orchestrator/)."""

    specs: list[ModelSpec]
    statuses: dict[str, str]  # model_id -> health status as the runner reports it

    def predict_round(self, payload: dict[str, Any], horizon_seconds: int, step_seconds: int) -> list[Outcome]: ...

    def close(self) -> None: ...


def validate_output(raw: Any, output_type: type[BaseModel]) -> tuple[float, str]:
    """The answer's `value` and its JSON, or ValueError with the reason it is refused."""
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if not isinstance(raw, dict):
        raise ValueError(f"output must be a mapping with a 'value', got {type(raw).__name__}")
    try:
        output = output_type.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'output'}: {e['msg']}" for e in exc.errors(include_url=False))
        raise ValueError(f"output does not match {output_type.__name__}: {problems}") from None
    encoded = output.model_dump_json()
    if len(encoded) > MAX_OUTPUT_BYTES:
        raise ValueError(f"output is {len(encoded)} bytes, over the {MAX_OUTPUT_BYTES}-byte limit")
    value = float(getattr(output, "value"))
    if not math.isfinite(value):
        raise ValueError("value is not finite")
    return value, encoded


class InProcessRunner:
    def __init__(
        self, specs: Sequence[ModelSpec], output_type: type[BaseModel], timeout_seconds: float,
        base_classname: str = REFERENCE_BASE_CLASSNAME, feed_shape: str = "candle",
    ):
        self.specs = list(specs)
        self.output_type = output_type
        self.timeout_seconds = timeout_seconds
        self._models: dict[str, Any] = {}
        self._load_errors: dict[str, str] = {}
        self._executors = {spec.model_id: ThreadPoolExecutor(1, thread_name_prefix=f"model-{spec.model_id}") for spec in self.specs}
        self._busy: dict[str, Future] = {}
        for spec in self.specs:
            try:
                self._models[spec.model_id] = load_model(spec.entrypoint, base_classname, feed_shape)
            except Exception as exc:  # a model that cannot load fails its own predictions only
                self._load_errors[spec.model_id] = f"model failed to load: {exc!r}"
        # Health as the registry shows it: a model that could not load is unhealthy for the run.
        self.statuses = {spec.model_id: "unhealthy" if spec.model_id in self._load_errors else "healthy" for spec in self.specs}

    def close(self) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)

    def _call(self, model: Any, payload: dict[str, Any], horizon: int, step: int) -> tuple[Any, float]:
        started = time.perf_counter()
        model.tick(payload)
        answer = model.predict(payload["subject"], horizon, step)
        return answer, (time.perf_counter() - started) * 1000.0

    def predict_round(self, payload: dict[str, Any], horizon_seconds: int, step_seconds: int) -> list[Outcome]:
        """Every model's answer to one input; never raises for a model's fault."""
        futures: dict[str, Future] = {}
        outcomes: dict[str, Outcome] = {}
        for spec in self.specs:
            mid = spec.model_id
            if mid in self._load_errors:
                outcomes[mid] = Outcome(mid, PredictionStatus.FAILED, None, None, self._load_errors[mid], None)
            elif mid in self._busy and not self._busy[mid].done():
                outcomes[mid] = Outcome(mid, PredictionStatus.ABSENT, None, None, "model still busy with an earlier round", None)
            else:
                futures[mid] = self._executors[mid].submit(self._call, self._models[mid], payload, horizon_seconds, step_seconds)
        if futures:
            wait(list(futures.values()), timeout=self.timeout_seconds)
        for mid, future in futures.items():
            if not future.done():
                self._busy[mid] = future
                outcomes[mid] = Outcome(mid, PredictionStatus.ABSENT, None, None, f"no answer within {self.timeout_seconds:g} s", None)
                continue
            try:
                answer, latency = future.result()
            except Exception as exc:
                outcomes[mid] = Outcome(mid, PredictionStatus.FAILED, None, None, f"model raised {exc!r}"[:500], None)
                continue
            try:
                value, encoded = validate_output(answer, self.output_type)
            except ValueError as exc:
                outcomes[mid] = Outcome(mid, PredictionStatus.FAILED, None, None, str(exc)[:500], latency)
                continue
            outcomes[mid] = Outcome(mid, PredictionStatus.PENDING, value, encoded, None, latency)
        return [outcomes[spec.model_id] for spec in self.specs]
