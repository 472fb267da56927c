"""One schema per lake table: column names, order and polars dtypes.

Every write goes through `conform()`, so a frame with a missing column, an extra column or a
column of the wrong type is caught before it reaches the lake (nothing is written by position).
A column added to a table after files were written is listed in `ADDED_COLUMNS`: `upgrade()`
reads it as null from the older files, so they stay readable without being rewritten.
Table semantics live with the assets; this module only fixes shapes.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")


class SchemaError(ValueError):
    """A frame that cannot be conformed to its table's schema."""


FEED_RECORDS = pl.Schema(
    {
        "source": pl.String,
        "subject": pl.String,
        "kind": pl.String,  # "candle" or "tick"
        "granularity": pl.String,
        "ts_event": UTC_TS,  # candle: open time; tick: event time
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,  # ticks carry their price here too, so truth reads one column
        "volume": pl.Float64,
        "price": pl.Float64,
    }
)

INPUTS = pl.Schema(
    {
        "input_id": pl.String,
        "scope_key": pl.String,
        "subject": pl.String,
        "round_ts": UTC_TS,
        "resolvable_at": UTC_TS,
        "step_seconds": pl.Int64,
        "horizon_seconds": pl.Int64,
        "window_ts": pl.List(UTC_TS),
        # The window's records, one list per field (candles: OHLCV; ticks: the price as close).
        "window_open": pl.List(pl.Float64),
        "window_high": pl.List(pl.Float64),
        "window_low": pl.List(pl.Float64),
        "window_close": pl.List(pl.Float64),
        "window_volume": pl.List(pl.Float64),
        "record_count": pl.Int64,
        "last_record_ts": UTC_TS,
        # The contract's input builder's output as JSON; null when models get the default shape.
        "model_input": pl.String,
    }
)

PREDICTIONS = pl.Schema(
    {
        "prediction_id": pl.String,
        "input_id": pl.String,
        "scope_key": pl.String,
        "subject": pl.String,
        "model_id": pl.String,
        "round_ts": UTC_TS,
        "resolvable_at": UTC_TS,
        "status": pl.String,  # as created: PENDING, FAILED or ABSENT (SCORED is derived, see lake views)
        "value": pl.Float64,
        "output": pl.String,  # the validated output as JSON, extra keys kept
        "failed_reason": pl.String,
        "latency_ms": pl.Float64,
        "predicted_at": UTC_TS,
    }
)

SCORES = pl.Schema(
    {
        "prediction_id": pl.String,
        "input_id": pl.String,
        "scope_key": pl.String,
        "subject": pl.String,
        "model_id": pl.String,
        "round_ts": UTC_TS,
        "resolvable_at": UTC_TS,
        "prediction_value": pl.Float64,
        "entry_price": pl.Float64,
        "resolved_price": pl.Float64,
        "profit": pl.Float64,
        "direction_up": pl.Boolean,
        "value": pl.Float64,
        "success": pl.Boolean,
        "failed_reason": pl.String,
        "result": pl.String,  # the full ScoreResult as JSON (custom score types add fields)
        "scoring_version": pl.String,
    }
)

SNAPSHOTS = pl.Schema(
    {
        "model_id": pl.String,
        "period_start": UTC_TS,
        "period_end": UTC_TS,
        "prediction_count": pl.Int64,
        "scored_count": pl.Int64,
        "failed_count": pl.Int64,
        "value": pl.Float64,
        "result_summary": pl.String,  # JSON: aggregated score fields and metrics
        "scoring_version": pl.String,
    }
)

CHECKPOINTS = pl.Schema(
    {
        "checkpoint_id": pl.String,
        "period_start": UTC_TS,
        "period_end": UTC_TS,
        "status": pl.String,  # status when built (PENDING); later changes are checkpoint_events
        "ranking_key": pl.String,
        "model_count": pl.Int64,
        "entries": pl.String,  # JSON list of ranked entries
        "emission": pl.String,  # JSON EmissionCheckpoint
        "merkle_root": pl.String,  # root over the period's snapshots (coordinator_dagster.scoring.merkle)
    }
)

# One row per line of a checkpoint's payout table (`coordinator_dagster.scoring.payouts`): a paid
# or retained slot, or a model left unpaid with its reason; amounts in frac64 and, when the
# checkpoint carries a pool amount, in the pool's smallest unit.
CHECKPOINT_PAYOUTS = pl.Schema(
    {
        "checkpoint_id": pl.String,
        "group_key": pl.String,  # "3600", "BTC:3600", or "" for a rule without groups
        "slot": pl.Int64,  # 1..K; null for an unpaid model
        "status": pl.String,  # paid, retained or unpaid
        "model_id": pl.String,
        "cruncher": pl.String,
        "cruncher_index": pl.Int64,
        "score": pl.Float64,
        "reward_pct": pl.Int64,
        "prize": pl.Int64,
        "pool_amount": pl.Int64,
        "pool_unit": pl.String,
        "reason": pl.String,
    }
)

CHECKPOINT_EVENTS = pl.Schema(
    {
        "checkpoint_id": pl.String,
        "event_at": UTC_TS,
        "status": pl.String,
        "tx_hash": pl.String,
        "caller": pl.String,
    }
)

# The review record of a checkpoint build (`coordinator_dagster.checkpoint_review`): the hash of
# the emission it holds and its diff against the previous checkpoint, as the operator reviewed it.
CHECKPOINT_REVIEWS = pl.Schema(
    {
        "checkpoint_id": pl.String,
        "emission_hash": pl.String,  # sha256 of the emission's canonical JSON
        "previous_checkpoint_id": pl.String,
        "diff": pl.String,  # JSON list: per cruncher, share and rank now and before
    }
)

# Appended approvals: the newest event of a checkpoint is its approval state.
CHECKPOINT_APPROVALS = pl.Schema(
    {
        "checkpoint_id": pl.String,
        "event_at": UTC_TS,
        "action": pl.String,  # approved | revoked
        "emission_hash": pl.String,
        "reason": pl.String,
        "caller": pl.String,
    }
)

# Appended prize-file exports (`coordinator payout`): the ledger that keeps a confirmed
# checkpoint from being exported, and paid, twice.
CHECKPOINT_EXPORTS = pl.Schema(
    {
        "checkpoint_id": pl.String,
        "event_at": UTC_TS,
        "emission_hash": pl.String,
        "pool_amount": pl.Int64,
        "model_count": pl.Int64,
        "file_sha256": pl.String,
        "caller": pl.String,
    }
)

MODELS = pl.Schema(
    {
        "model_id": pl.String,
        "name": pl.String,
        "cruncher": pl.String,
        "cruncher_index": pl.Int64,
        "entrypoint": pl.String,
        "joined_at": UTC_TS,
        "active": pl.Boolean,  # false once removed from the manifest; kept for past checkpoints
        "status": pl.String,  # healthy / unhealthy as the runner reports it; "removed" once inactive
    }
)


# Density competitions (Synth): one row per model per density-forecast round (asset × horizon ×
# round time), the round's CRPS total and its normalised score; the leaderboards per horizon and
# per asset × horizon read this table.
DENSITY_ROUND_SCORES = pl.Schema(
    {
        "model_id": pl.String,
        "subject": pl.String,  # the asset
        "profile": pl.String,  # the prediction profile the round belongs to ("24h", "1h", ...)
        "horizon_seconds": pl.Int64,
        "performed_at": UTC_TS,  # the round's time: the last price the models had
        "resolvable_at": UTC_TS,  # performed_at + horizon
        "status": pl.String,  # SCORED, or FAILED / ABSENT (scored as the round's worst)
        "failed_reason": pl.String,
        "density_count": pl.Int64,  # densities that entered the CRPS total
        "crps": pl.Float64,  # Σ CRPS / asset half-width (lower is better); the round's worst if not SCORED
        "vol_crps": pl.Float64,  # the 1 h volatility term included in crps (its units); null where none
        "score": pl.Float64,  # normalised in the round: best 1, worst 5 % and missing 0
        "asset_weight": pl.Float64,
    }
)

# Density competitions, live: one row per model per profile round asked (asset × profile × round
# time), written once by the `density_predictions` asset (coordinator_dagster.density_pipeline).
DENSITY_PREDICTIONS = pl.Schema(
    {
        "model_id": pl.String,
        "subject": pl.String,
        "profile": pl.String,
        "horizon_seconds": pl.Int64,
        "performed_at": UTC_TS,  # the round's time
        "resolvable_at": UTC_TS,  # performed_at + horizon: the truth's time
        "asked_at": UTC_TS,  # when the node asked (or recorded the round as missed)
        "lateness_seconds": pl.Float64,  # asked_at − performed_at
        "answer_seconds": pl.Float64,  # how long the model took; null when not asked or not answered
        "status": pl.String,  # PENDING (valid densities), FAILED (with the reason) or ABSENT
        "failed_reason": pl.String,
        "densities": pl.String,  # JSON {step seconds: [density, ...]}, checked and rounded; null unless PENDING
    }
)

# Trading: one row per hour, the replay state at the hour's end as exact text
# (coordinator_dagster.scoring.trading.hourly); its PnL and fills tables take their schemas from
# coordinator_dagster.scoring.trading.replay.
TRADING_STATE = pl.Schema({"period_start": UTC_TS, "as_of": UTC_TS, "state": pl.String})


def leaderboard_schema(window_names: Iterable[str]) -> pl.Schema:
    """The leaderboard's columns depend on the contract's aggregation windows."""
    columns: dict[str, pl.DataType] = {
        "rank": pl.Int64,
        "model_id": pl.String,
        "model_name": pl.String,
        "cruncher": pl.String,
        "ranking_key": pl.String,
        "ranking_value": pl.Float64,
        "is_ensemble": pl.Boolean,  # virtual models rank apart (rank null) and are hidden by default
    }
    for name in window_names:
        columns[name] = pl.Float64
    columns["prediction_count"] = pl.Int64
    columns["as_of"] = UTC_TS
    return pl.Schema(columns)


def group_leaderboard_schema(window_names: Iterable[str]) -> pl.Schema:
    """Leaderboards per group of rounds (`coordinator_dagster.scoring.group_ranking`), long form:
    one row per model per group; the overall ranking is the group "".
    """
    columns: dict[str, pl.DataType] = {
        "group_kind": pl.String,  # overall, horizon or param
        "group_key": pl.String,  # "", "3600", "BTC:3600"
        "subject": pl.String,  # the asset of a param group, else null
        "horizon_seconds": pl.Int64,  # the horizon of a horizon or param group, else null
        "rank": pl.Int64,
        "model_id": pl.String,
        "ranking_key": pl.String,
        "ranking_value": pl.Float64,
    }
    for name in window_names:
        columns[name] = pl.Float64
    columns["round_count"] = pl.Int64  # rounds in the longest window
    columns["as_of"] = UTC_TS
    return pl.Schema(columns)


# Columns added to a table after files were written: older files read them as null.
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "inputs": ("window_open", "window_high", "window_low", "window_volume", "model_input"),
    "models": ("status",),
}


def upgrade(frame: pl.DataFrame, schema: pl.Schema, table: str) -> pl.DataFrame:
    """`frame` (as read from one file) with the table's later-added columns it lacks, as nulls."""
    missing = [name for name in ADDED_COLUMNS.get(table, ()) if name not in frame.columns]
    if not missing:
        return frame
    added = frame.with_columns(pl.lit(None, dtype=schema[name]).alias(name) for name in missing)
    # In the schema's order, so it stacks with files that have the columns.
    return added.select([n for n in schema.names() if n in added.columns] + [n for n in added.columns if n not in schema])


def conform(frame: pl.DataFrame, schema: pl.Schema, table: str) -> pl.DataFrame:
    """Select `schema`'s columns in order and cast to its dtypes; refuse missing or extra columns."""
    missing = [name for name in schema.names() if name not in frame.columns]
    extra = [name for name in frame.columns if name not in schema]
    if missing or extra:
        raise SchemaError(f"{table}: missing columns {missing}, unexpected columns {extra}")
    try:
        return frame.select(pl.col(name).cast(dtype, strict=True) for name, dtype in schema.items())
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        raise SchemaError(f"{table}: cannot cast to the table schema: {exc}") from exc


def empty(schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)
