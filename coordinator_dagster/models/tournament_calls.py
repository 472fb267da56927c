"""Tournament calls through the model workers: every model's `predict(features)` once per sample of
a round, each call in the model's own (sandboxed) worker process with the pool's per-call timeout,
never in the calling process (the API process holds the admin key; participant code is untrusted).

A model that raises, hangs past the timeout, dies or breaks the channel gets a FAILED outcome for
that sample with the reason; a hung or dead worker is killed and replaced before the model's next
sample, so nothing else of the round is lost (a replaced worker's state starts over). The models
of a round run at once, each through its samples in order. Answers come back as the model's JSON
(PENDING, `output`), unvalidated: the tournament's contract checks them (`tournament_rounds`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from coordinator_dagster.models.runner import ModelSpec, Outcome
from coordinator_dagster.models.safe_json import UnsafeJSON, loads_bounded
from coordinator_dagster.models.service import STARTUP_TIMEOUT_SECONDS, ModelPool, Slot
from coordinator_dagster.models.worker import ChannelClosed
from coordinator_dagster.models.worker_handle import PoolSettings, ProtocolError, Worker
from coordinator_dagster.statuses import PredictionStatus


class _AnyOutput(BaseModel):
    """The pool's output type is not used on this path: the tournament contract validates."""


def predict_samples(pool: ModelPool, samples: Sequence[dict[str, Any]]) -> dict[str, list[Outcome]]:
    """model_id → one outcome per sample, in the samples' order; never raises for a model's fault."""
    return pool.each_model(lambda slot: _model_samples(pool.settings, slot, samples))


def _model_samples(settings: PoolSettings, slot: Slot, samples: Sequence[dict[str, Any]]) -> list[Outcome]:
    with slot.lock:
        return [_one(settings, slot, features) for features in samples]


def _replace(settings: PoolSettings, slot: Slot, reason: str) -> None:
    if slot.worker is not None:
        slot.worker.kill()
    slot.worker = Worker(slot.spec, settings)
    slot.last_error = reason


def _one(settings: PoolSettings, slot: Slot, features: dict[str, Any]) -> Outcome:
    mid = slot.spec.model_id

    def failed(reason: str, latency: float | None = None) -> Outcome:
        return Outcome(mid, PredictionStatus.FAILED, None, None, reason[:500], latency)

    worker = slot.worker if slot.worker is not None else Worker(slot.spec, settings)
    slot.worker = worker
    try:
        worker.wait_ready(time.monotonic() + STARTUP_TIMEOUT_SECONDS)
        message = worker.predict_features(features, time.monotonic() + settings.timeout_seconds)
    except RuntimeError as exc:  # the model failed to load: every sample says so, no restart
        return failed(str(exc))
    except TimeoutError:
        reason = f"no answer within {settings.timeout_seconds:g} s (worker killed and restarted)" if worker.ready else f"model did not load within {STARTUP_TIMEOUT_SECONDS:g} s"
        _replace(settings, slot, reason)
        return failed(reason)
    except ChannelClosed:
        reason = worker.death_reason()
        _replace(settings, slot, reason)
        return failed(reason)
    except ProtocolError as exc:
        _replace(settings, slot, str(exc))
        return failed(str(exc))
    latency = message.get("ms")
    if message["type"] == "error":
        return failed(message["error"], latency)
    if message["type"] == "oversized":
        return failed(f"oversized: answer of {message['bytes']} bytes, over the {settings.max_output_bytes}-byte limit", latency)
    try:
        loads_bounded(message["answer"], 4 * settings.max_output_bytes)
    except UnsafeJSON as exc:
        _replace(settings, slot, str(exc))
        return failed(f"protocol error: answer {exc} (worker restarted)", latency)
    return Outcome(mid, PredictionStatus.PENDING, None, message["answer"], None, latency)


class LocalTournamentRunner:
    """A pool of worker processes started by this process (no runner service configured): the
    models still run outside it, sandboxed as the settings say, with the per-call timeout."""

    def __init__(self, specs: Sequence[ModelSpec], settings: PoolSettings):
        self.specs = list(specs)
        self.pool = ModelPool(self.specs, settings, _AnyOutput)

    def predict_samples(self, samples: Sequence[dict[str, Any]]) -> dict[str, list[Outcome]]:
        return predict_samples(self.pool, samples)

    def close(self) -> None:
        self.pool.close()
