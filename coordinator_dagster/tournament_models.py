"""How a tournament round reaches its models: never in the calling process (the API process
holds the admin key and secrets, a Dagster run the node's settings), always in the models'
worker processes with the per-call timeout, as realtime rounds run in the runner service.

With MODEL_RUNNER_URL the runner service answers (`POST /tournament/predict`); without it,
this process starts the same sandboxed workers itself (`models.tournament_calls`). Either way
a runner is `predict_samples(features per sample) -> model_id -> one Outcome per sample`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from coordinator_dagster.models.runner import ModelSpec, Outcome
from coordinator_dagster.models.sandbox import choose_sandbox
from coordinator_dagster.models.worker_handle import PoolSettings
from coordinator_dagster.scoring.tournament import Answer
from coordinator_dagster.settings import Settings
from coordinator_dagster.statuses import PredictionStatus


class TournamentRunner(Protocol):
    def predict_samples(self, samples: Sequence[dict[str, Any]]) -> dict[str, list[Outcome]]: ...

    def close(self) -> None: ...


def pool_settings(settings: Settings, timeout_seconds: float | None = None) -> PoolSettings:
    """The workers' limits and sandbox from the node's settings (MODEL_TIMEOUT_SECONDS, MODEL_SANDBOX, ...)."""
    return PoolSettings(
        timeout_seconds=settings.model_timeout_seconds if timeout_seconds is None else timeout_seconds,
        memory_limit_mb=settings.model_memory_limit_mb,
        unhealthy_after=settings.model_unhealthy_after,
        retry_seconds=settings.model_retry_seconds,
        sandbox=choose_sandbox(settings.model_sandbox, settings.model_scratch_mb),
        cpu_seconds=settings.model_cpu_seconds,
        max_processes=settings.model_max_processes,
        base_classname=settings.model_base_classname,
        feed_shape=settings.feed_kind,
    )


def open_runner(settings: Settings, specs: Sequence[ModelSpec]) -> TournamentRunner:
    """The runner service at MODEL_RUNNER_URL, or workers started by this process; the caller closes it."""
    url = settings.model_runner_url.strip()
    if url:
        from coordinator_dagster.models.client import RemoteTournament

        return RemoteTournament(url, timeout_seconds=settings.model_timeout_seconds)
    from coordinator_dagster.models.tournament_calls import LocalTournamentRunner

    return LocalTournamentRunner(specs, pool_settings(settings))


def answers(outcomes: Mapping[str, Sequence[Outcome]]) -> dict[str, list[Answer]]:
    """Each model's answers as the round's rows take them: the decoded answer, or why there is none."""
    return {model_id: [_answer(o) for o in rows] for model_id, rows in outcomes.items()}


def _answer(outcome: Outcome) -> Answer:
    if outcome.status != PredictionStatus.PENDING:
        return None, outcome.failed_reason or f"no answer ({outcome.status.value})"
    try:
        return json.loads(outcome.output or "null"), None
    except (ValueError, RecursionError) as exc:
        return None, f"unreadable answer: {exc}"[:500]
