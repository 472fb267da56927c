"""Tournament rounds on uploaded data (the reference's `/tournament/rounds/...` paths).

- `POST /tournament/rounds/{round_id}/inference` `{features: [{…}, …]}`: every model's
  `predict(features)` once per sample; one prediction per model per sample, with its sample id.
- `POST /tournament/rounds/{round_id}/score` `{ground_truth: {…} | [{…}, …]}`: scores the round,
  matched by sample id, then its snapshots, the leaderboard and the round's checkpoint.
- `GET /tournament/rounds/{round_id}/status`: counts by status.
- `GET /tournament/rounds/{round_id}/checkpoint`, `PATCH .../checkpoint/status`: the round's
  emission checkpoint and its lifecycle (PENDING → SUBMITTED → CLAIMABLE → PAID).

Writes are admin-tier like every write of the node (the reference leaves these open, so anyone
could post truth that scores live predictions); the round's steps are
`coordinator_dagster.tournament_rounds`. Models are the node's manifest (MODELS_MANIFEST), run in
worker processes (the runner service at MODEL_RUNNER_URL, or workers this app starts once),
never in the API process, with the per-call timeout (`coordinator_dagster.tournament_models`).
With DAGSTER_HOME set, each inference and scoring is reported to that instance as runless
materializations of the round's tournament assets (`coordinator_dagster.tournament_reports`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field

from api.auth import AdminCaller
from coordinator_dagster import tournament_rounds as rounds
from coordinator_dagster.checkpoint_lifecycle import Conflict
from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.models.runner import ModelSpec
from coordinator_dagster.scoring.tournament import RoundError, TruthLocked
from coordinator_dagster.settings import dagster_instance, load_settings
from coordinator_dagster.statuses import CheckpointStatus
from coordinator_dagster.tournament_lake import ROUND_ID, BadRoundId, RoundLake
from coordinator_dagster.tournament_models import TournamentRunner, open_runner
from coordinator_dagster.tournament_reports import INFERENCE_STEPS, SCORING_STEPS, report_round_quietly

router = APIRouter(prefix="/tournament", tags=["tournament"])
_RUNNER_LOCK = threading.Lock()
log = logging.getLogger(__name__)


RoundId = Annotated[str, Path(pattern=ROUND_ID.pattern, description="1-64 letters, digits, '_', '.' or '-'")]
_READ = {404: {"description": "the round has no such record yet"}}
_WRITE = {
    400: {"description": "the upload does not describe the round (sample ids missing, duplicated or mixed)"},
    401: {"description": "the admin API key is missing or wrong"},
    404: {"description": "the round lacks what this step needs (features, predictions, a checkpoint)"},
    409: {"description": "the round was predicted already, or its checkpoint left PENDING and the truth differs"},
    413: {"description": "request body too large"},
}


class InferenceRequest(BaseModel):
    features: list[dict[str, Any]] = Field(..., min_length=1, description="one feature object per sample; give each a `sample_id` or none")


class InferenceResponse(BaseModel):
    round_id: str
    model_count: int
    sample_count: int
    prediction_count: int
    by_status: dict[str, int]
    status: str


class ScoreRequest(BaseModel):
    ground_truth: dict[str, Any] | list[dict[str, Any]] = Field(..., description="truth per sample, matched by `sample_id` (or by upload order)")


class ScoreResult(BaseModel):
    prediction_id: str
    sample_id: str
    model_id: str
    score: float | None
    success: bool
    failed_reason: str | None
    result: dict[str, Any]


class ScoreResponse(BaseModel):
    round_id: str
    scores_count: int
    checkpoint_status: str | None
    results: list[ScoreResult]


class RoundStatusResponse(BaseModel):
    round_id: str
    status: str
    total: int
    model_count: int
    sample_count: int
    by_status: dict[str, int]
    has_truth: bool
    checkpoint_status: str | None


class CheckpointResponse(BaseModel):
    checkpoint_id: str
    round_id: str
    status: str
    built_at: dt.datetime
    model_count: int
    entries: list[dict[str, Any]]
    emission: dict[str, Any]
    merkle_root: str | None


class StatusChange(BaseModel):
    status: CheckpointStatus = Field(description="the next status: one step forward from the current one")
    tx_hash: str | None = None


class TournamentNode:
    """What the routes need, built once per app: the round lake, the contract, the models."""

    def __init__(self, request: Request):
        state = request.app.state
        self.lake = RoundLake(state.settings.home)
        self.contract = state.contract
        self._state = state

    @property
    def specs(self) -> list[ModelSpec]:
        if not hasattr(self._state, "tournament_specs"):
            self._state.tournament_specs = load_manifest(load_settings().models_manifest or None)
        return self._state.tournament_specs

    @property
    def runner(self) -> TournamentRunner:
        # Never the models themselves: participant code runs in worker processes (the runner
        # service's, or started from here, sandboxed), so this process never imports it.
        with _RUNNER_LOCK:  # one set of workers per app, even under concurrent first requests
            if not hasattr(self._state, "tournament_runner"):
                self._state.tournament_runner = open_runner(load_settings(), self.specs)
        return self._state.tournament_runner

    def report(self, round_id: str, steps: tuple[str, ...], description: str) -> None:
        """The round's steps reported to the Dagster instance at DAGSTER_HOME, if set; a failure
        is logged, never the request's."""
        with _RUNNER_LOCK:
            if not hasattr(self._state, "dagster_instance"):
                try:
                    self._state.dagster_instance = dagster_instance(load_settings())
                except Exception:  # a bad DAGSTER_HOME must not fail the round
                    log.exception("no Dagster instance: tournament rounds go unreported")
                    self._state.dagster_instance = None
        report_round_quietly(self._state.dagster_instance, self.lake, round_id, steps, description)


Node = Annotated[TournamentNode, Depends(TournamentNode)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _refuse(exc: Exception) -> HTTPException:
    if isinstance(exc, (rounds.RoundNotFound,)):
        return HTTPException(status_code=404, detail=str(exc))
    if isinstance(exc, (rounds.RoundExists, TruthLocked, Conflict)):
        return HTTPException(status_code=409, detail=str(exc))
    return HTTPException(status_code=400, detail=str(exc))


@router.post("/rounds/{round_id}/inference", response_model=InferenceResponse, responses=_WRITE)
def run_inference(round_id: RoundId, body: InferenceRequest, node: Node, caller: AdminCaller) -> InferenceResponse:
    """Record the round's features and run every model on each sample."""
    try:
        rounds.record_features(node.lake, round_id, body.features, _now())
        predictions = rounds.run_inference(node.lake, round_id, node.runner, rounds.output_validator(node.contract.output_type))
    except (RoundError, BadRoundId) as exc:
        raise _refuse(exc) from exc
    node.report(round_id, INFERENCE_STEPS, "inference through the API")
    state = rounds.status(node.lake, round_id)
    return InferenceResponse(
        round_id=round_id,
        model_count=state["model_count"],
        sample_count=state["sample_count"],
        prediction_count=predictions.height,
        by_status=state["by_status"],
        status=state["status"],
    )


@router.post("/rounds/{round_id}/score", response_model=ScoreResponse, responses=_WRITE)
def score_round(round_id: RoundId, body: ScoreRequest, node: Node, caller: AdminCaller) -> ScoreResponse:
    """Score the round against its truth, then its snapshots, the leaderboard and its checkpoint."""
    try:
        scores = rounds.score_and_publish(node.lake, round_id, node.contract, node.specs, body.ground_truth, _now())
    except (RoundError, BadRoundId) as exc:
        raise _refuse(exc) from exc
    node.report(round_id, SCORING_STEPS, "scoring through the API")
    current = rounds.checkpoint_status(node.lake, round_id)
    return ScoreResponse(
        round_id=round_id,
        scores_count=scores.height,
        checkpoint_status=current.value if current else None,
        results=[
            ScoreResult(
                prediction_id=row["prediction_id"], sample_id=row["sample_id"], model_id=row["model_id"], score=row["value"],
                success=row["success"], failed_reason=row["failed_reason"], result=json.loads(row["result"]),
            )
            for row in scores.iter_rows(named=True)
        ],
    )


@router.get("/rounds/{round_id}/status", response_model=RoundStatusResponse)
def round_status(round_id: RoundId, node: Node) -> RoundStatusResponse:
    try:
        return RoundStatusResponse(**rounds.status(node.lake, round_id))
    except BadRoundId as exc:
        raise _refuse(exc) from exc


def _checkpoint(node: TournamentNode, round_id: str) -> CheckpointResponse:
    frame = node.lake.read_round("checkpoints", round_id)
    if frame.is_empty():
        raise HTTPException(status_code=404, detail=f"round {round_id} has no checkpoint")
    row = frame.row(0, named=True)
    current = rounds.checkpoint_status(node.lake, round_id)
    return CheckpointResponse(
        checkpoint_id=row["checkpoint_id"], round_id=row["round_id"], status=current.value if current else row["status"],
        built_at=row["built_at"], model_count=row["model_count"], entries=json.loads(row["entries"]),
        emission=json.loads(row["emission"]), merkle_root=row["merkle_root"],
    )


@router.get("/rounds/{round_id}/checkpoint", response_model=CheckpointResponse, responses=_READ)
def round_checkpoint(round_id: RoundId, node: Node) -> CheckpointResponse:
    try:
        return _checkpoint(node, round_id)
    except BadRoundId as exc:
        raise _refuse(exc) from exc


@router.patch("/rounds/{round_id}/checkpoint/status", response_model=CheckpointResponse, responses=_WRITE)
def change_status(round_id: RoundId, body: StatusChange, node: Node, caller: AdminCaller) -> CheckpointResponse:
    """One step forward; a step back or a skipped step is a 409, an unknown status a 422."""
    try:
        rounds.change_checkpoint_status(node.lake, round_id, body.status, body.tx_hash, caller, _now())
    except (RoundError, BadRoundId, Conflict) as exc:
        raise _refuse(exc) from exc
    return _checkpoint(node, round_id)
