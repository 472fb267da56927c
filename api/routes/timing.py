"""`GET /timing-metrics`: the round engine's per-stage latencies over its newest rounds, in the
reference's shape (per stage count, mean, median, min, max, p95, p99 in microseconds, its share
of the end-to-end mean; `end_to_end` last; the ten newest samples)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from coordinator_dagster.engine.round_engine import engine_dir
from coordinator_dagster.engine.timing import DEFAULT_LIMIT, MAX_LIMIT, recent_timings, timing_metrics

router = APIRouter(prefix="/timing-metrics", tags=["health"])


@router.get("", response_model=dict[str, Any], summary="Round latency per stage (the round engine's newest rounds)")
def get_timing_metrics(request: Request, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="newest rounds to summarise")] = DEFAULT_LIMIT) -> dict[str, Any]:
    return timing_metrics(recent_timings(engine_dir(request.app.state.lake.home), limit))
