"""Response models of the report API: the public shapes clients rely on.

They are deliberately separate from the lake's storage rows (`coordinator_dagster.schemas`):
storage may gain columns, split JSON fields or change layout without changing an answer, and
an answer may reshape rows (the leaderboard's window columns become one `windows` mapping).
Field names follow the reference engine where it has them.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class PredictionStatus(StrEnum):
    PENDING = "PENDING"
    SCORED = "SCORED"
    FAILED = "FAILED"
    ABSENT = "ABSENT"


class CheckpointStatus(StrEnum):
    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    CLAIMABLE = "CLAIMABLE"
    PAID = "PAID"


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class Page(ApiModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    total: int = Field(description="rows matching the filters, over all pages")


class Health(ApiModel):
    status: Literal["ok"]
    lake: str = Field(description="the lake folder the API reads")
    tables: dict[str, int] = Field(description="Parquet files per lake table")


class LeaderboardEntry(ApiModel):
    rank: int | None = Field(description="1 = best; null for ensembles, which are not ranked")
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
    proof: dict[str, Any] = Field(description="coordinator-merkle-v1 proof; check it with `coordinator verify-proof`")
