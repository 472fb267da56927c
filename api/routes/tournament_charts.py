"""The tournament's read routes for the dashboard: rounds with their counts, each model's score
per round (chart rows), and the leaderboard over rounds. Flat rows, as the dashboard's charts
take them (`performed_at` is when the round was scored); widgets pointing here are
`api.dashboard.tournament_widgets`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from coordinator_dagster import tournament_rounds as rounds
from coordinator_dagster.tournament_lake import RoundLake

router = APIRouter(prefix="/tournament", tags=["tournament"])


class RoundRow(BaseModel):
    round_id: str
    status: str
    sample_count: int
    model_count: int
    total: int
    PENDING: int = 0
    SCORED: int = 0
    FAILED: int = 0
    ABSENT: int = 0
    has_truth: bool
    checkpoint_status: str | None


class RoundScoreRow(BaseModel):
    round_id: str
    model_id: str
    performed_at: dt.datetime
    value: float | None
    prediction_count: int
    scored_count: int
    failed_count: int


def _lake(request: Request) -> RoundLake:
    return RoundLake(request.app.state.settings.home)


@router.get("/rounds", response_model=list[RoundRow], summary="Every tournament round with its predictions counted by status")
def list_rounds(request: Request) -> list[dict[str, Any]]:
    lake = _lake(request)
    answer = []
    for round_id in lake.rounds("predictions"):
        state = rounds.status(lake, round_id)
        answer.append({**{k: v for k, v in state.items() if k != "by_status"}, **state["by_status"]})
    return answer


@router.get("/rounds/scores", response_model=list[RoundScoreRow], summary="Each model's mean score per round, oldest round first")
def round_scores(request: Request) -> list[dict[str, Any]]:
    snaps = _lake(request).read_all("snapshots").sort("period_end", "round_id", "model_id")
    return [
        {**{k: row[k] for k in ("round_id", "model_id", "value", "prediction_count", "scored_count", "failed_count")}, "performed_at": row["period_end"]}
        for row in snaps.iter_rows(named=True)
    ]


@router.get("/leaderboard", response_model=list[dict[str, Any]], summary="The leaderboard over every round, best first")
def tournament_leaderboard(request: Request) -> list[dict[str, Any]]:
    board = _lake(request).read_leaderboard()
    return board.to_dicts() if board is not None else []
