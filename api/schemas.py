"""Response models of the report API: the public shapes clients rely on.

They are deliberately separate from the lake's storage rows (`coordinator_dagster.lake.schemas`):
storage may gain columns, split JSON fields or change layout without changing an answer, and
an answer may reshape rows (the leaderboard's window columns become one `windows` mapping).
Field names follow the reference engine where it has them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from coordinator_dagster.statuses import CheckpointStatus, PredictionStatus

T = TypeVar("T")


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class Page(ApiModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    total: int = Field(description="rows matching the filters, over all pages")


class Health(ApiModel):
    status: Literal["ok"]
    lake: str | None = Field(description="the lake folder the API reads; shown to admins only (null otherwise)")
    tables: dict[str, int] = Field(description="Parquet files per lake table")


class LeaderboardEntry(ApiModel):
    rank: int | None = Field(
        description="1 = best; dense: models with exactly equal ranking values share a rank; "
        "null for a model without a ranking value and for ensembles, which are not ranked"
    )
    is_ensemble: bool = False
    model_id: str
    model_name: str | None
    cruncher: str | None
    ranking_key: str
    ranking_value: float | None
    windows: dict[str, float | None] = Field(description="mean score per aggregation window, by window name")
    prediction_count: int | None
    as_of: dt.datetime | None = Field(description="end of the newest snapshot the ranking covers")


class Prediction(ApiModel):
    prediction_id: str
    input_id: str
    scope_key: str
    subject: str
    model_id: str
    round_ts: dt.datetime
    resolvable_at: dt.datetime | None
    status: PredictionStatus = Field(description="SCORED once a score exists for a PENDING prediction")
    value: float | None
    failed_reason: str | None
    score_value: float | None


class CheckpointSummary(ApiModel):
    checkpoint_id: str
    period_start: dt.datetime
    period_end: dt.datetime
    status: CheckpointStatus = Field(description="the newest checkpoint event's status, else PENDING as built")
    ranking_key: str | None
    model_count: int
    tx_hash: str | None
    merkle_root: str | None = Field(default=None, description="Merkle root over the period's snapshots")


class CruncherReward(ApiModel):
    cruncher_index: int
    reward_pct: int = Field(description="frac64: 1,000,000,000 is 100 %")


class ProviderReward(ApiModel):
    provider: str
    reward_pct: int = Field(description="frac64: 1,000,000,000 is 100 %")


class Emission(ApiModel):
    """A checkpoint's EmissionCheckpoint as stored when it was built, with its current status."""

    checkpoint_id: str
    status: CheckpointStatus
    crunch: str
    cruncher_rewards: list[CruncherReward]
    compute_provider_rewards: list[ProviderReward]
    data_provider_rewards: list[ProviderReward]
    retained_pct: int = Field(
        default=0, description="crunchers' share the reward rule left unpaid (frac64); cruncher_rewards + retained_pct = 1,000,000,000"
    )


class MerkleCycle(ApiModel):
    period_start: str
    root: str
    chained_root: str
    model_ids: list[str]


class MerkleTree(ApiModel):
    checkpoint_id: str
    merkle_root: str
    cycles: list[MerkleCycle]


class MerkleProofAnswer(ApiModel):
    checkpoint_id: str
    merkle_root: str
    proof: dict[str, Any] = Field(description="coordinator-merkle-v2 proof; check it with `coordinator verify-proof`")


# ---- checkpoint lifecycle ---------------------------------------------------------------------


class StrictBody(BaseModel):
    """A request body: unknown keys are a 422, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfirmRequest(StrictBody):
    tx_hash: str = Field(
        min_length=1, max_length=88, description="the Solana transaction signature (base58, 64 bytes decoded)"
    )


class StatusRequest(StrictBody):
    status: CheckpointStatus = Field(description="the next status: one step forward from the current one")


class CheckpointEvent(ApiModel):
    event_at: dt.datetime
    status: CheckpointStatus
    tx_hash: str | None
    caller: str | None


class CheckpointDetail(CheckpointSummary):
    status_changed_at: dt.datetime | None = Field(description="time of the newest event, null while as built")
    entries: list[dict[str, Any]] = Field(description="the ranked entries the emission was built from")
    history: list[CheckpointEvent] = Field(description="every status event, oldest first")


class CliReward(ApiModel):
    cruncher_index: int
    reward_pct: int = Field(description="frac64: 1,000,000,000 is 100 %")
    percent: float = Field(description="reward_pct as a percentage, for reading")


class EmissionCliFormat(ApiModel):
    """The emission as the on-chain submission tool takes it: one file per checkpoint whose
    `prizes` list is passed as is (`crunch-cli crunch checkpoint-create <crunch> prizes.json`)."""

    checkpoint_id: str
    status: CheckpointStatus
    crunch: str
    prizes: list[CliReward]
    compute_provider_rewards: list[ProviderReward]
    data_provider_rewards: list[ProviderReward]
    total_reward_pct: int = Field(
        description="sum of the prizes; 1,000,000,000 when there are any, unless the reward rule retains a share (the emission's retained_pct)"
    )


class CheckpointReward(ApiModel):
    checkpoint_id: str
    period_start: dt.datetime
    period_end: dt.datetime
    status: CheckpointStatus
    rank: int | None
    model_id: str | None
    cruncher: str | None
    cruncher_index: int
    reward_pct: int = Field(description="frac64: 1,000,000,000 is 100 %")


# ---- models, feeds, snapshots, info -------------------------------------------------------------


class ModelInfo(ApiModel):
    model_id: str
    name: str | None
    cruncher: str | None
    cruncher_index: int | None
    joined_at: dt.datetime | None = Field(description="when the node first registered the model")
    active: bool | None = Field(description="false once the model left the manifest")
    status: str | None = Field(
        default=None,
        description="healthy, unhealthy (kept failing: resting, retried after a backoff) or removed, as of the last predict run",
    )


class ModelGlobal(ApiModel):
    model_id: str
    model_name: str | None
    cruncher: str | None
    rank: int | None = Field(description="current leaderboard rank, null if unranked")
    ranking_value: float | None
    windows: dict[str, float | None] = Field(description="current leaderboard windows")
    snapshot_count: int
    prediction_count: int
    scored_count: int
    failed_count: int
    mean_value: float | None = Field(description="mean snapshot value over all history")
    first_period: dt.datetime | None
    last_period: dt.datetime | None


class ScopeParams(ApiModel):
    scope_key: str
    subject: str
    step_seconds: int
    horizon_seconds: int
    prediction_interval_seconds: int
    resolve_horizon_seconds: int
    active: bool


class Diversity(ApiModel):
    model_id: str
    snapshot_count: int
    model_correlation: float | None = Field(description="mean Spearman against every other model")
    ensemble_correlation: float | None
    contribution: float | None
    fnc: float | None
    guidance: str


class FeedSummary(ApiModel):
    source: str
    subject: str
    kind: str
    granularity: str
    first_ts: dt.datetime
    last_ts: dt.datetime
    record_count: int


class Snapshot(ApiModel):
    model_id: str
    period_start: dt.datetime
    period_end: dt.datetime
    prediction_count: int | None
    scored_count: int | None
    failed_count: int | None
    value: float | None
    result_summary: dict[str, Any] | None


class ContractInfo(ApiModel):
    scopes: list[ScopeParams]
    windows: dict[str, int]
    ranking_key: str
    ranking_direction: str
    metrics: list[str]
    ensembles: list[str]
    checkpoint_period: str
    scoring_version: str
    crunch_pubkey: str


class Info(ApiModel):
    name: str
    version: str
    lake: str | None = Field(description="the lake folder; shown to admins only (null otherwise)")
    auth: dict[str, bool] = Field(description="admin_key_required, read_key_required")
    contract: ContractInfo
    custom_routes: list[str]


class PartitionFile(ApiModel):
    table: str
    partition_key: str
    bytes: int
    url: str
