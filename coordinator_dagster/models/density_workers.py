"""Density trackers out of process: each tracker of a run in its own worker process (the runner
service's worker, sandboxed as MODEL_SANDBOX says), behind `DensityRoundDriver`'s interface.

The run's process never imports participant code: a tick and a question go to the worker as one
`density` frame each (`models.worker`), the answer comes back as bounded JSON and is checked here
(`check_forecast`). Per round the trackers are asked at once, with one deadline (the profile's);
a tracker past it, or one whose worker dies or breaks the protocol, is ABSENT or FAILED with the
reason and its worker is killed and replaced, so its next tick carries the warm-up history again
(a restarted model). Workers last for the run; a new run starts them afresh (warm-up on their
first tick). Not the runner service itself: its HTTP routes do not carry density rounds yet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from coordinator_dagster.models.density_rounds import checked_answer
from coordinator_dagster.models.runner import ModelSpec
from coordinator_dagster.models.safe_json import UnsafeJSON, loads_bounded
from coordinator_dagster.models.worker import ChannelClosed
from coordinator_dagster.models.worker_handle import PoolSettings, ProtocolError, Worker
from coordinator_dagster.prediction_profiles import PredictionProfile, tick_payload, warm_up_seconds
from coordinator_dagster.scoring.density.rounds import DensityAnswer
from coordinator_dagster.statuses import PredictionStatus

# A 24 h round holds 317 densities per asset; mixtures of three make it ~100 KB of JSON.
DENSITY_OUTPUT_BYTES = 1 << 20
# A model has this long to load (import, build) before its first tick counts as missed.
LOAD_SECONDS = 60.0


class _Failure(Exception):
    def __init__(self, status: PredictionStatus, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason[:500]


class WorkerDensityDriver:
    """`tick(prices, now)`, `ask(profile, asset, performed_at)`, `close()`, as `DensityRoundDriver`."""

    def __init__(self, specs: Sequence[ModelSpec], profiles: Sequence[PredictionProfile], settings: PoolSettings):
        self.settings = dataclasses.replace(settings, max_output_bytes=max(settings.max_output_bytes, DENSITY_OUTPUT_BYTES))
        self.specs = {spec.model_id: spec for spec in specs}
        self.trackers = dict(self.specs)  # model ids, in the manifest's order (what rows follow)
        self.profiles = list(profiles)
        self.assets = sorted({a for p in self.profiles if p.active for a in p.assets})
        self.history_seconds = warm_up_seconds(self.profiles)
        self.resolution = min((p.history_resolution_seconds for p in self.profiles), default=60)
        # A tick may carry a month of history: it gets the longest answer deadline of the profiles.
        self.tick_seconds = max((p.deadline_seconds for p in self.profiles), default=40.0)
        self.workers: dict[str, Worker] = {m: Worker(spec, self.settings) for m, spec in self.specs.items()}
        self._last_tick: dict[str, dt.datetime | None] = {m: None for m in self.specs}
        self._broken: dict[str, str] = {}  # model → why it answers nothing this run (load failure)
        self._threads = ThreadPoolExecutor(max(1, len(self.specs)), thread_name_prefix="density-worker")
        self.ticks: list[tuple[str, dt.datetime, int]] = []
        self.answer_seconds: dict[str, float] = {}

    # ---- one model's calls ----------------------------------------------------------------------
    def _call(self, model_id: str, tick: dict | None, asset: str | None, profile: PredictionProfile | None, deadline: float, seconds: float) -> Any:
        worker = self.workers[model_id]
        steps = list(profile.steps) if profile else []
        horizon = profile.horizon_seconds if profile else 0
        try:
            worker.wait_ready(max(deadline, worker.started + LOAD_SECONDS))
            message = worker.density(tick, asset, horizon, steps, deadline)
        except RuntimeError as exc:  # the model failed to load: nothing of it runs this run
            self._broken[model_id] = str(exc)[:500]
            raise _Failure(PredictionStatus.FAILED, str(exc)) from None
        except TimeoutError:
            self._replace(model_id)
            raise _Failure(PredictionStatus.ABSENT, f"no answer within {seconds:g} s (worker killed and restarted)") from None
        except ChannelClosed:
            reason = worker.death_reason()
            self._replace(model_id)
            raise _Failure(PredictionStatus.ABSENT, reason) from None
        except ProtocolError as exc:
            self._replace(model_id)
            raise _Failure(PredictionStatus.FAILED, str(exc)) from None
        if message["type"] == "error":
            raise _Failure(PredictionStatus.FAILED, message["error"])
        if message["type"] == "oversized":
            raise _Failure(PredictionStatus.FAILED, f"oversized: answer of {message['bytes']} bytes, over the {self.settings.max_output_bytes}-byte limit")
        try:
            return loads_bounded(message["answer"], 4 * self.settings.max_output_bytes)
        except UnsafeJSON as exc:
            self._replace(model_id)
            raise _Failure(PredictionStatus.FAILED, f"protocol error: answer {exc} (worker restarted)") from None

    def _replace(self, model_id: str) -> None:
        """A fresh worker; its first tick carries the warm-up history again."""
        self.workers[model_id].kill()
        self.workers[model_id] = Worker(self.specs[model_id], self.settings)
        self._last_tick[model_id] = None

    # ---- the driver's interface -------------------------------------------------------------------
    def tick(self, prices: pl.DataFrame, now: dt.datetime) -> None:
        """Send every tracker the prices it has not seen up to `now` (warm-up on a fresh worker)."""
        live = [m for m in self.specs if m not in self._broken]
        payloads = {m: tick_payload(prices, self.assets, now, self._last_tick[m], self.history_seconds, self.resolution) for m in live}
        deadline = time.monotonic() + self.tick_seconds
        futures = {m: self._threads.submit(self._call, m, {a: [list(p) for p in v] for a, v in payloads[m].items()}, None, None, deadline, self.tick_seconds) for m in live}
        for model_id, future in futures.items():
            try:
                future.result()
            except _Failure as failure:
                if model_id not in self._broken:
                    self._broken[model_id] = f"tick: {failure.reason}"[:500]
                continue
            self._last_tick[model_id] = now
            self.ticks.append((model_id, now, sum(len(v) for v in payloads[model_id].values())))

    def ask(self, profile: PredictionProfile, asset: str, performed_at: dt.datetime) -> list[DensityAnswer]:
        """Every tracker's answer to one round (all at once, one deadline)."""
        self.answer_seconds = {}
        began = time.monotonic()
        deadline = began + profile.deadline_seconds
        answers: dict[str, DensityAnswer] = {}
        futures = {}
        for model_id in self.specs:
            if model_id in self._broken:
                answers[model_id] = DensityAnswer(model_id, asset, profile.name, profile.horizon_seconds, performed_at, None, PredictionStatus.FAILED, self._broken[model_id])
            else:
                futures[model_id] = self._threads.submit(self._call, model_id, None, asset, profile, deadline, profile.deadline_seconds)
        for model_id, future in futures.items():
            try:
                raw = future.result()
            except _Failure as failure:
                answers[model_id] = DensityAnswer(model_id, asset, profile.name, profile.horizon_seconds, performed_at, None, failure.status, failure.reason)
                continue
            self.answer_seconds[model_id] = time.monotonic() - began
            answers[model_id] = checked_answer(model_id, profile, asset, performed_at, raw)
        return [answers[m] for m in self.specs]

    def close(self) -> None:
        for worker in self.workers.values():
            worker.kill()
        self._threads.shutdown(wait=False, cancel_futures=True)
