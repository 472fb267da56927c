"""`GET /reports/leaderboard/late`: the late track per model (answers to rounds asked after their
cutoff: how many, how late on average, their mean score by the contract's scoring function).
Never part of the ranking or of any payout; see `coordinator_dagster.scoring.late_track`."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import DbDep
from coordinator_dagster.scoring.late_track import late_summary
from coordinator_dagster.statuses import PredictionStatus

router = APIRouter(prefix="/reports/leaderboard", tags=["leaderboard"])


class LateTrackEntry(BaseModel):
    model_id: str
    late_prediction_count: int
    mean_lateness_seconds: float
    scored_count: int  # late answers with a successful late score so far
    mean_late_score: float | None


@router.get("/late", response_model=list[LateTrackEntry], summary="The late track: late answers per model, their lateness and score (never rewarded)")
def get_late_track(db: DbDep) -> list[dict]:
    late = db.execute(
        "SELECT prediction_id, model_id, round_ts, predicted_at FROM raw_predictions WHERE status = ?", [PredictionStatus.LATE.value]
    ).pl()
    scores = db.execute("SELECT prediction_id, value, success FROM late_scores").pl()
    return late_summary(late, scores).to_dicts()
