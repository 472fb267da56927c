"""The model runner service's supervisor: worker processes, rounds, health, sessions.

Each model runs in its own worker process (`models.worker`), kept alive across rounds so its state
persists. A round fans one input out to every model at once and waits at most the per-model
timeout. What each model's row becomes:

    PENDING  a valid answer (checked with `runner.validate_output` against the contract's type)
    FAILED   the model raised, its answer is invalid, not finite, or over the size cap
    ABSENT   no answer in time (the worker is killed), the worker died, or the model is unhealthy

A killed or dead worker is replaced at once, so the next round finds a fresh one (its state is
lost: it starts over from the next round's input). `unhealthy_after` consecutive timeouts,
crashes or load failures mark a model unhealthy: its rows are ABSENT with reason "unhealthy"
and no worker is started for it until a backoff (doubling from `retry_seconds`, at most 15 min)
has passed; one good answer makes it healthy again.

A `ModelPool` is one set of workers. The service keeps one live pool, synced with the manifest
at every round, and creates separate pools ("sessions") for replays, so a replay never touches
the live models' state. The HTTP front end is `models.http_server`; one worker process, seen
from here, is `worker_handle.Worker`.

About 400 lines in one module because a round, the health rules and the session pools share one
lock discipline (a slot's lock, the pool's round lock, the service's session lock); the worker
process, its sandbox, frame decoding and the shares over several runners have modules of their own.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from coordinator_dagster.models.manifest import ManifestError, load_manifest, manifest_entry
from coordinator_dagster.models.runner import ModelSpec, Outcome, validate_output
from coordinator_dagster.models.safe_json import UnsafeJSON, loads_bounded
from coordinator_dagster.models.shares import share
from coordinator_dagster.models.worker import ChannelClosed
from coordinator_dagster.models.worker_handle import PoolSettings, ProtocolError, Worker
from coordinator_dagster.statuses import PredictionStatus

__all__ = ["LIVE", "CapacityError", "ModelPool", "ModelService", "PoolSettings", "ServiceLimits", "outcome_json"]

STARTUP_TIMEOUT_SECONDS = 60.0  # a worker still loading its model after this is killed
MAX_BACKOFF_SECONDS = 900.0
SESSION_LOAD_SECONDS = 20.0  # a new replay session waits this long at most for its models to load
LIVE = "live"
log = logging.getLogger("coordinator.models")


@dataclass(frozen=True)
class ServiceLimits:
    """Caps on what clients of the service can make it start."""

    max_sessions: int = 4  # replay sessions open at once
    max_workers: int = 512  # worker processes of the live pool and every session together



class CapacityError(RuntimeError):
    """A session the caps (`ServiceLimits`) do not allow."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _loading(slot: "Slot") -> bool:
    """Will this slot's round wait for a model to load (a worker not ready, or none yet)?"""
    worker = slot.worker
    return slot.unhealthy_until is None and (worker is None or not worker.ready)


@dataclass
class Slot:
    """A model in a pool: its spec, its current worker and its health."""

    spec: ModelSpec
    loaded_at: dt.datetime
    worker: Worker | None = None
    failures: int = 0  # consecutive timeouts, crashes and load failures
    strikes: int = 0  # times marked unhealthy in a row: sets the backoff
    unhealthy_until: float | None = None  # monotonic time of the next retry
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def status(self) -> str:
        return "unhealthy" if self.unhealthy_until is not None else "healthy"


class ModelPool:
    """One worker per model. `predict` is serialized: models are stateful and answer in order."""

    def __init__(self, specs: Sequence[ModelSpec], settings: PoolSettings, output_type: type[BaseModel], clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.output_type = output_type
        self.clock = clock
        self.slots: dict[str, Slot] = {}
        self._round_lock = threading.Lock()
        self._threads = 8
        self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="round")
        self.last_used = time.monotonic()
        self.sync(specs)

    # ---- membership ---------------------------------------------------------------------------
    def sync(self, specs: Sequence[ModelSpec]) -> None:
        """Start added models, stop removed ones, restart those whose spec changed."""
        wanted = {spec.model_id: spec for spec in specs}
        for model_id in list(self.slots):
            if model_id not in wanted or wanted[model_id] != self.slots[model_id].spec:
                self._stop_slot(self.slots.pop(model_id))
        for model_id, spec in wanted.items():
            if model_id not in self.slots:
                slot = Slot(spec, _utcnow())
                slot.worker = Worker(spec, self.settings)
                self.slots[model_id] = slot
        # Keep the manifest's order: rows and the registry follow it.
        self.slots = {model_id: self.slots[model_id] for model_id in wanted}
        # One thread per model, so every model of a round runs at once.
        if len(self.slots) > self._threads:
            with self._round_lock:
                self._threads = len(self.slots) + 8
                old, self._executor = self._executor, ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="round")
            old.shutdown(wait=False)

    def _stop_slot(self, slot: Slot) -> None:
        with slot.lock:
            if slot.worker is not None:
                slot.worker.kill()
                slot.worker = None

    def close(self) -> None:
        for slot in self.slots.values():
            self._stop_slot(slot)
        self.slots = {}
        self._executor.shutdown(wait=False, cancel_futures=True)

    def specs(self) -> list[ModelSpec]:
        return [slot.spec for slot in self.slots.values()]

    def describe(self) -> list[dict[str, Any]]:
        now = self.clock()
        rows = []
        for slot in self.slots.values():
            retry_in = None if slot.unhealthy_until is None else max(0.0, slot.unhealthy_until - now)
            worker = slot.worker
            rows.append(
                {
                    **manifest_entry(slot.spec),
                    "status": slot.status,
                    "loaded_at": slot.loaded_at.isoformat(),
                    "consecutive_failures": slot.failures,
                    "last_error": slot.last_error,
                    "retry_in_seconds": retry_in,
                    "pid": worker.proc.pid if worker is not None and worker.alive() else None,
                    "loading": worker is not None and worker.loading(),
                }
            )
        return rows

    # ---- rounds -------------------------------------------------------------------------------
    def predict(self, payload: dict[str, Any], horizon: int, step: int) -> list[Outcome]:
        """Every model's outcome for one input; never raises for a model's fault."""
        with self._round_lock:
            self.last_used = time.monotonic()
            deadline = time.monotonic() + self.settings.timeout_seconds
            slots = list(self.slots.values())
            # A model still loading answers only if it is ready before the loaded models are all
            # done: it never holds the round up (it is ABSENT "worker starting" instead).
            others_done = threading.Event()
            loading = [_loading(slot) for slot in slots]
            futures = [self._executor.submit(self._call, slot, payload, horizon, step, deadline, others_done) for slot in slots]
            loaded = [future for future, is_loading in zip(futures, loading) if not is_loading]
            wait(loaded, timeout=max(0.0, deadline - time.monotonic()))
            others_done.set()
            return [future.result() for future in futures]

    def each_model(self, call: Callable[[Slot], Any]) -> dict[str, Any]:
        """model_id → `call(slot)`, every model at once, serialized with rounds (the tournament's
        per-sample calls, `tournament_calls`)."""
        with self._round_lock:
            self.last_used = time.monotonic()
            futures = {mid: self._executor.submit(call, slot) for mid, slot in self.slots.items()}
            return {mid: future.result() for mid, future in futures.items()}

    def wait_loaded(self, seconds: float) -> None:
        """Wait (at most `seconds` in all) until every worker has loaded its model or failed to;
        a fresh replay session does this, so its first round does not find them all loading."""
        deadline = time.monotonic() + seconds
        for slot in list(self.slots.values()):
            with slot.lock:
                worker = slot.worker
                if worker is None or worker.ready:
                    continue
                try:
                    worker.wait_ready(deadline)
                except Exception:  # noqa: BLE001 - the first round reports it
                    continue

    def _fail(self, slot: Slot, reason: str) -> None:
        """A timeout, crash or load failure: replace the worker, or rest the model if it keeps failing."""
        if slot.worker is not None:
            slot.worker.kill()
            slot.worker = None
        slot.failures += 1
        slot.last_error = reason
        if slot.failures >= self.settings.unhealthy_after:
            slot.strikes += 1
            backoff = min(self.settings.retry_seconds * 2 ** (slot.strikes - 1), MAX_BACKOFF_SECONDS)
            slot.unhealthy_until = self.clock() + backoff
        else:
            slot.worker = Worker(slot.spec, self.settings)

    def _succeed(self, slot: Slot) -> None:
        slot.failures = 0
        slot.strikes = 0
        slot.unhealthy_until = None

    def _call(self, slot: Slot, payload: dict[str, Any], horizon: int, step: int, deadline: float, others_done: threading.Event) -> Outcome:
        """`_attempt`, and whatever else goes wrong with this model's call fails only its row."""
        try:
            return self._attempt(slot, payload, horizon, step, deadline, others_done)
        except Exception as exc:  # noqa: BLE001 - a model's fault must never fail the round
            log.exception("model %s: unexpected error while running its round", slot.spec.model_id)
            reason = f"runner error: {type(exc).__name__}: {exc}"[:500]
            with slot.lock:
                if slot.worker is not None:
                    slot.worker.kill()
                    slot.worker = None  # the next round starts a fresh one
                slot.failures += 1
                slot.last_error = reason
            return Outcome(slot.spec.model_id, PredictionStatus.FAILED, None, None, reason, None)

    def _attempt(self, slot: Slot, payload: dict[str, Any], horizon: int, step: int, deadline: float, others_done: threading.Event) -> Outcome:
        mid = slot.spec.model_id
        timeout = self.settings.timeout_seconds
        with slot.lock:
            if slot.unhealthy_until is not None:
                if self.clock() < slot.unhealthy_until:
                    return Outcome(mid, PredictionStatus.ABSENT, None, None, f"unhealthy: {slot.failures} consecutive failures, last: {slot.last_error}"[:500], None)
                # Backoff over: start a fresh worker now; it answers from the next round on.
                slot.unhealthy_until = None
                slot.failures = self.settings.unhealthy_after - 1  # one more failure rests it again
                slot.worker = Worker(slot.spec, self.settings)
                return Outcome(mid, PredictionStatus.ABSENT, None, None, "unhealthy: retrying, worker restarted", None)
            worker = slot.worker
            if worker is None:
                worker = slot.worker = Worker(slot.spec, self.settings)
            try:
                worker.wait_ready(deadline, give_up=others_done)
            except TimeoutError:
                if time.monotonic() - worker.started > STARTUP_TIMEOUT_SECONDS:
                    self._fail(slot, f"model did not load within {STARTUP_TIMEOUT_SECONDS:g} s")
                return Outcome(mid, PredictionStatus.ABSENT, None, None, "worker starting: model still loading", None)
            except ChannelClosed:
                reason = worker.death_reason()
                self._fail(slot, reason)
                return Outcome(mid, PredictionStatus.ABSENT, None, None, reason[:500], None)
            except (RuntimeError, ProtocolError) as exc:
                self._fail(slot, str(exc))
                return Outcome(mid, PredictionStatus.FAILED, None, None, str(exc)[:500], None)
            try:
                message = worker.predict(payload, horizon, step, deadline)
                outcome = self._outcome(mid, message)
            except TimeoutError:
                reason = f"no answer within {timeout:g} s (worker killed and restarted)"
                self._fail(slot, reason)
                return Outcome(mid, PredictionStatus.ABSENT, None, None, reason, None)
            except ChannelClosed:
                reason = worker.death_reason()
                self._fail(slot, reason)
                return Outcome(mid, PredictionStatus.ABSENT, None, None, reason[:500], None)
            except ProtocolError as exc:
                # Forged, oversized, malformed or too deeply nested: the channel cannot be trusted.
                self._fail(slot, str(exc))
                return Outcome(mid, PredictionStatus.FAILED, None, None, str(exc)[:500], None)
            self._succeed(slot)
            return outcome

    def _outcome(self, mid: str, message: dict[str, Any]) -> Outcome:
        """The row for a well-formed answer frame (`_checked_answer`); ProtocolError if its
        answer cannot be decoded within bounds."""
        cap = self.settings.max_output_bytes
        latency = message.get("ms")
        kind = message["type"]
        if kind == "error":
            return Outcome(mid, PredictionStatus.FAILED, None, None, message["error"][:500], latency)
        if kind == "oversized":
            return Outcome(mid, PredictionStatus.FAILED, None, None, f"oversized: answer of {message['bytes']} bytes, over the {cap}-byte limit", latency)
        try:
            raw = loads_bounded(message["answer"], 4 * cap)  # a str of at most `cap` characters
        except UnsafeJSON as exc:
            raise ProtocolError(f"protocol error: answer {exc} (worker restarted)") from None
        try:
            value, encoded = validate_output(raw, self.output_type)
        except (TypeError, ValueError, RecursionError) as exc:
            return Outcome(mid, PredictionStatus.FAILED, None, None, f"invalid output: {exc}"[:500], latency)
        return Outcome(mid, PredictionStatus.PENDING, value, encoded, None, latency)


class ModelService:
    """The live pool (synced with the manifest at each round) and the replay sessions."""

    def __init__(self, manifest: str, settings: PoolSettings, output_type: type[BaseModel], session_idle_seconds: float = 900.0, limits: ServiceLimits | None = None):
        self.manifest = manifest
        self.settings = settings
        self.limits = limits or ServiceLimits()
        self.output_type = output_type
        self.session_idle_seconds = session_idle_seconds
        self.manifest_error: str | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self.manifest_specs: list[ModelSpec] = []  # the whole manifest; the live pool runs this runner's share
        self.assignment: tuple[tuple[str, ...], int] | None = None  # (runners, this one's index); None: all
        self.live = ModelPool(self._share(self._read_manifest(initial=True)), settings, output_type)
        self.sessions: dict[str, ModelPool] = {}

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = Path(self.manifest).stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _read_manifest(self, initial: bool = False) -> list[ModelSpec]:
        self._manifest_stamp = self._stamp() if self.manifest else None
        try:
            specs = load_manifest(self.manifest)
            if len(specs) > self.limits.max_workers:
                raise ManifestError(f"model manifest {self.manifest}: {len(specs)} models, over the runner's cap of {self.limits.max_workers} workers (MODEL_RUNNER_MAX_WORKERS)")
        except ManifestError as exc:
            if initial:
                raise
            self.manifest_error = str(exc)
            return self.manifest_specs  # a broken edit keeps the models that were running
        self.manifest_error = None
        self.manifest_specs = specs
        return specs

    def _share(self, specs: list[ModelSpec]) -> list[ModelSpec]:
        """The models of `specs` this runner serves (`shares`), all of them when unassigned."""
        if self.assignment is None:
            return specs
        runners, index = self.assignment
        mine = set(share([spec.model_id for spec in specs], runners, index))
        return [spec for spec in specs if spec.model_id in mine]

    def assign(self, runners: Sequence[str], index: int) -> None:
        """Serve only the models `shares.owner` gives runner `index` of `runners` (the node's list)."""
        with self._lock:
            self.assignment = (tuple(runners), index)
            self.live.sync(self._share(self.manifest_specs))

    def refresh(self) -> None:
        """Re-read the manifest if it changed since the last round (hot reload)."""
        with self._lock:
            if self.manifest and self._stamp() != self._manifest_stamp:
                self.live.sync(self._share(self._read_manifest()))
            self._expire_sessions()

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        for sid, pool in list(self.sessions.items()):
            if now - pool.last_used > self.session_idle_seconds:
                self.sessions.pop(sid).close()

    def pool(self, session: str) -> ModelPool:
        if session == LIVE:
            return self.live
        with self._lock:
            try:
                return self.sessions[session]
            except KeyError:
                raise KeyError(f"no session {session!r} (expired or closed)") from None

    def open_session(self) -> tuple[str, ModelPool]:
        """A fresh pool with the manifest's current models, for a replay."""
        self.refresh()
        sid = uuid.uuid4().hex
        specs = self.live.specs()
        with self._lock:
            if len(self.sessions) >= self.limits.max_sessions:
                raise CapacityError(f"{len(self.sessions)} sessions open, the cap is {self.limits.max_sessions} (MODEL_RUNNER_MAX_SESSIONS); close one first")
            workers = len(self.live.slots) + sum(len(pool.slots) for pool in self.sessions.values())
            if workers + len(specs) > self.limits.max_workers:
                raise CapacityError(f"a session of {len(specs)} workers would bring the runner to {workers + len(specs)}, over its cap of {self.limits.max_workers} (MODEL_RUNNER_MAX_WORKERS)")
            self.sessions[sid] = pool = ModelPool(specs, self.settings, self.output_type)
        pool.wait_loaded(SESSION_LOAD_SECONDS)
        return sid, pool

    def close_session(self, session: str) -> bool:
        with self._lock:
            pool = self.sessions.pop(session, None)
        if pool is None:
            return False
        pool.close()
        return True

    def close(self) -> None:
        with self._lock:
            pools = [self.live, *self.sessions.values()]
            self.sessions = {}
        for pool in pools:
            pool.close()


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    latency = outcome.latency_ms
    return {
        "model_id": outcome.model_id,
        "status": outcome.status,
        "value": outcome.value,
        "output": outcome.output,
        "failed_reason": outcome.failed_reason,
        "latency_ms": latency if latency is None or math.isfinite(latency) else None,
    }
