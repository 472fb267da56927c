"""Response models of the dashboard's shapes (see `api.dashboard`).

Rows that carry each window and metric as a top-level field allow extra fields: their names come
from the contract, so the OpenAPI schema lists the fixed fields and says where the others come
from. Chart rows carry their times as `chart_time` strings (UTC without an offset).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import ConfigDict, Field

from api.schemas import ApiModel, CheckpointSummary, Diversity, FeedSummary, LeaderboardEntry, ModelGlobal

_FLAT = "plus each aggregation window and contract metric as a top-level number (null when unknown)"


class FlatRow(ApiModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class ScoreRanking(ApiModel):
    key: str
    value: float | None
    direction: str = Field(description="asc or desc")


class DashboardLeaderboardEntry(LeaderboardEntry):
    __doc__ = f"A leaderboard row: the project's fields, {_FLAT}."
    model_config = ConfigDict(frozen=True, extra="allow")
    cruncher_name: str | None
    username: str | None = Field(description="= cruncher_name, the property the dashboard's default cruncher column reads")
    status: str = Field(description="active (the model is in the manifest) or inactive")
    created_at: dt.datetime | None = Field(description="when the ranking was computed (= as_of)")
    score_metrics: dict[str, float | None] = Field(description="every window and metric, by name")
    score_ranking: ScoreRanking
    # The late track (coordinator_dagster.scoring.late_track): shown beside the ranking, never
    # part of it, of `rank` or of any reward.
    late_count: int = Field(0, description="late-track answers (asked after their round's cutoff) scored so far; never ranked or rewarded")
    late_score_mean: float | None = Field(
        None, description="mean of those answers' successful late scores (null before any); apart from the ranking and rewards"
    )


class DashboardModel(ApiModel):
    model_id: str
    model_name: str | None
    cruncher_name: str | None
    cruncher_id: str | None = Field(description="the cruncher's index on chain, as text")
    deployment_id: str | None = Field(description="the model's entrypoint in the manifest")
    name: str | None
    cruncher: str | None
    cruncher_index: int | None
    joined_at: dt.datetime | None
    active: bool | None
    status: str | None


class DashboardModelGlobal(ModelGlobal):
    __doc__ = f"A model's all-time summary with the chart fields, {_FLAT}."
    model_config = ConfigDict(frozen=True, extra="allow")
    performed_at: str | None = Field(description="end of the newest snapshot, UTC without an offset")
    score_metrics: dict[str, float | None]
    score_ranking: ScoreRanking


class ParamsRow(FlatRow):
    __doc__ = f"One model × scope × hour: each window's mean score up to that hour, {_FLAT.split(',')[0]}."
    model_id: str
    scope_key: str
    scope: dict[str, Any]
    subject: str
    asset: str = Field(description="the subject again, under the dashboard's default filter name")
    horizon: str = Field(description="e.g. 1m, 1h")
    param: str = Field(description="the scope key: the chart's series grouping")
    performed_at: str
    score_metrics: dict[str, float | None]
    score_ranking: ScoreRanking


class MetricsRow(FlatRow):
    """One snapshot: model, hour end and every numeric field of its summary at the top level."""

    model_id: str
    performed_at: str
    prediction_count: int | None


class SummaryRow(FlatRow):
    """A model's newest snapshot in the range, its numeric summary fields at the top level."""

    model_id: str
    performed_at: str


class ChartPrediction(ApiModel):
    model_id: str
    prediction_id: str
    scope_key: str
    scope: dict[str, Any]
    subject: str
    asset: str
    horizon: str | None
    param: str
    status: str
    performed_at: str = Field(description="the round's time, UTC without an offset")
    score_value: float | None
    score_success: bool
    score_failed: bool
    score_failed_reason: str | None
    scored_at: str | None = Field(description="when the score became known (the resolvable time), null until scored")


class FeedStatus(FeedSummary):
    oldest_ts: dt.datetime
    newest_ts: dt.datetime
    watermark_ts: dt.datetime | None = Field(description="the newest record's time: how far the node has indexed")
    watermark_updated_at: dt.datetime | None = Field(description="when the feed table was last written")


class FeedRecord(ApiModel):
    source: str
    subject: str
    kind: str
    granularity: str
    ts_event: dt.datetime
    ts_ingested: dt.datetime | None = Field(description="when the record's hour was last written to the lake")
    values: dict[str, float | None]
    meta: dict[str, Any]


class CheckpointRankingEntry(ApiModel):
    model_id: str | None
    model_name: str | None
    rank: int | None
    cruncher_index: int | None
    prediction_count: int | None


class CheckpointMeta(ApiModel):
    model_count: int
    snapshot_count: int
    ranking: list[CheckpointRankingEntry]


class DashboardCheckpoint(CheckpointSummary):
    id: str = Field(description="= checkpoint_id")
    entries: list[dict[str, Any]] = Field(description="the emission (one EmissionCheckpoint), as the reference lists it")
    meta: CheckpointMeta
    created_at: dt.datetime = Field(description="the end of the period: a checkpoint is built once its period is over")
    submitted_at: dt.datetime | None = Field(description="when the SUBMITTED event was recorded")


class CheckpointPayload(ApiModel):
    checkpoint_id: str
    period_start: dt.datetime
    period_end: dt.datetime
    entries: list[dict[str, Any]] = Field(description="the emission (one EmissionCheckpoint)")


class Prize(ApiModel):
    prizeId: str
    timestamp: int = Field(description="the period's end, Unix seconds")
    model: str
    prize: int = Field(description="whole tokens of total_prize; the prizes add up to exactly total_prize")


class LatestPrizes(ApiModel):
    checkpoint_id: str
    status: str
    period_start: dt.datetime
    period_end: dt.datetime
    total_prize: int
    prizes: list[Prize]


class DashboardReward(ApiModel):
    checkpoint_id: str
    period_start: str
    period_end: str
    status: str
    model_id: str | None
    model_name: str | None
    cruncher: str | None
    cruncher_index: int
    rank: int | None
    prediction_count: int | None
    reward_pct: float = Field(description="percent of the cruncher rewards (0–100)")
    reward_frac64: int = Field(description="the same share in frac64 (1,000,000,000 = 100 %)")


class EmissionCli(ApiModel):
    crunch: str
    crunchEmission: dict[str, float] = Field(description="percent (0–100) by the model id of each rewarded cruncher")
    computeProvider: dict[str, float]
    dataProvider: dict[str, float]


class DashboardDiversity(Diversity):
    diversity_score: float | None = Field(description="1 − |model_correlation|, floored at 0, 4 decimals")
