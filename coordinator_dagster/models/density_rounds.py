"""Running density trackers in process: ticks with warm-up, one question per round, deadline.

A tracker has crunch-synth's interface: `tick(data)` with `{asset: [(unix seconds, price), ...]}`
and `predict_all(asset, horizon, steps) -> {step: [density, ...]}` (a tracker with only
`predict(asset, horizon, step)` is asked step by step). A tracker's first tick, and its first
after `restart()`, carries the warm-up history the profiles need; later ticks carry the prices
since its previous tick. Each answer becomes a `DensityAnswer`: valid (PENDING, densities checked
and rounded), FAILED with the reason (the tracker raised or answered something invalid), or
ABSENT (no answer within the profile's deadline; the late answer is dropped and the tracker is
not asked again until it has finished). Sandboxed, out-of-process trackers (the live pipeline's
default) go through `models.density_workers`, which checks answers with `checked_answer` too;
this driver serves the demo, tests and trusted in-house models.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import polars as pl

from coordinator_dagster.models.runner import ModelSpec
from coordinator_dagster.prediction_profiles import PredictionProfile, tick_payload, warm_up_seconds
from coordinator_dagster.scoring.callables import resolve_dotted
from coordinator_dagster.scoring.density.rounds import DensityAnswer
from coordinator_dagster.scoring.density.spec import DensityError, check_forecast
from coordinator_dagster.statuses import PredictionStatus


def _ask(tracker: Any, asset: str, horizon: int, steps: Sequence[int]) -> Any:
    if hasattr(tracker, "predict_all"):
        return tracker.predict_all(asset, horizon, list(steps))
    return {step: tracker.predict(asset, horizon, step) for step in steps if step <= horizon}


def checked_answer(model_id: str, profile: PredictionProfile, asset: str, performed_at: dt.datetime, raw: Any) -> DensityAnswer:
    """A tracker's raw answer to a round, checked (`check_forecast`): PENDING with the canonical
    densities, or FAILED with why it was refused."""
    try:
        densities = check_forecast(raw, profile.horizon_seconds, profile.steps)
    except DensityError as exc:
        return DensityAnswer(model_id, asset, profile.name, profile.horizon_seconds, performed_at, None, PredictionStatus.FAILED, str(exc)[:500])
    return DensityAnswer(model_id, asset, profile.name, profile.horizon_seconds, performed_at, densities)


class DensityRoundDriver:
    def __init__(self, trackers: Mapping[str, Any], profiles: Sequence[PredictionProfile]):
        self.trackers = dict(trackers)
        self.profiles = list(profiles)
        self.assets = sorted({a for p in self.profiles if p.active for a in p.assets})
        self.history_seconds = warm_up_seconds(self.profiles)
        self.resolution = min((p.history_resolution_seconds for p in self.profiles), default=60)
        self._last_tick: dict[str, dt.datetime | None] = {m: None for m in self.trackers}
        self._broken: dict[str, str] = {}
        self._pending: dict[str, Future] = {}
        self._pools = {m: ThreadPoolExecutor(1, thread_name_prefix=f"tracker-{m}") for m in self.trackers}
        self.ticks: list[tuple[str, dt.datetime, int]] = []  # (model, now, prices sent): what each tick carried
        self.answer_seconds: dict[str, float] = {}  # per model: how long its answer to the last round took

    def restart(self, model_id: str) -> None:
        """Forget what the tracker was sent: its next tick carries the warm-up history again."""
        self._last_tick[model_id] = None
        self._broken.pop(model_id, None)

    def tick(self, prices: pl.DataFrame, now: dt.datetime) -> None:
        """Send every tracker the prices it has not seen up to `now` (warm-up on its first tick)."""
        for model_id, tracker in self.trackers.items():
            if model_id in self._broken or self._busy(model_id):
                continue
            payload = tick_payload(prices, self.assets, now, self._last_tick[model_id], self.history_seconds, self.resolution)
            try:
                with warnings.catch_warnings():
                    # crunch-synth's PriceStore trims its window through sortedcontainers' deprecated `iloc`.
                    warnings.filterwarnings("ignore", message="sorted_dict.iloc is deprecated", category=DeprecationWarning)
                    tracker.tick(payload)
            except Exception as exc:  # a tracker's failure costs its own answers, never the round
                self._broken[model_id] = f"tick raised {type(exc).__name__}: {exc}"[:500]
                continue
            self._last_tick[model_id] = now
            self.ticks.append((model_id, now, sum(len(v) for v in payload.values())))

    def _busy(self, model_id: str) -> bool:
        future = self._pending.get(model_id)
        if future is not None and future.done():
            del self._pending[model_id]
            return False
        return future is not None

    def ask(self, profile: PredictionProfile, asset: str, performed_at: dt.datetime) -> list[DensityAnswer]:
        """Every tracker's answer to one round (all trackers asked at once, each in its own thread)."""
        asked: dict[str, Future] = {}
        answers: dict[str, DensityAnswer] = {}
        self.answer_seconds = {}

        def answer(model_id: str, densities: Any = None, status: str = PredictionStatus.PENDING, reason: str | None = None) -> DensityAnswer:
            return DensityAnswer(model_id, asset, profile.name, profile.horizon_seconds, performed_at, densities, status, reason)

        for model_id, tracker in self.trackers.items():
            if model_id in self._broken:
                answers[model_id] = answer(model_id, status=PredictionStatus.FAILED, reason=self._broken[model_id])
            elif self._busy(model_id):
                answers[model_id] = answer(model_id, status=PredictionStatus.ABSENT, reason="still answering an earlier round")
            else:
                asked[model_id] = self._pools[model_id].submit(_ask, tracker, asset, profile.horizon_seconds, profile.steps)
        began = time.monotonic()
        cutoff = began + profile.deadline_seconds  # one deadline for the round, not per model
        for model_id, future in asked.items():
            try:
                raw = future.result(timeout=max(0.0, cutoff - time.monotonic()))
                self.answer_seconds[model_id] = time.monotonic() - began
            except FutureTimeout:
                self._pending[model_id] = future
                answers[model_id] = answer(model_id, status=PredictionStatus.ABSENT, reason=f"no answer within {profile.deadline_seconds:g} s")
                continue
            except Exception as exc:
                answers[model_id] = answer(model_id, status=PredictionStatus.FAILED, reason=f"predict raised {type(exc).__name__}: {exc}"[:500])
                continue
            answers[model_id] = checked_answer(model_id, profile, asset, performed_at, raw)
        return [answers[m] for m in self.trackers]

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


def load_trackers(specs: Sequence[ModelSpec]) -> dict[str, Any]:
    """The models of a manifest, instantiated in this process (entrypoint `module:Class`)."""
    trackers = {}
    for spec in specs:
        if spec.path and spec.path not in sys.path:
            sys.path.insert(0, spec.path)
        try:
            factory = resolve_dotted(spec.entrypoint)
        except ImportError as exc:
            raise RuntimeError(
                f"model {spec.model_id}: cannot import {spec.entrypoint} ({exc}); install what the workspace's "
                "requirements.txt lists into the coordinator's environment"
            ) from exc
        trackers[spec.model_id] = factory()
    return trackers
