"""`checkpoints`: one emission checkpoint per checkpoint period."""

import datetime as dt
import json

import dagster as dg
import polars as pl
from pydantic import Field

from assets.metadata import check_result, emission_markdown, emission_shares
from assets.snapshots import snapshots
from coordinator_dagster.trading_lake import trading_checkpoint_entries
from coordinator_dagster import group_lake
from coordinator_dagster.scoring import payouts, ranking
from coordinator_dagster.scoring.top_k_rewards import TopKPerGroup
from coordinator_dagster import checkpoint_review as review
from coordinator_dagster.checkpoint_lifecycle import may_rebuild
from coordinator_dagster.lake.schemas import CHECKPOINT_REVIEWS
from coordinator_dagster.checks import CHECKPOINT_CHECKS, RANKING_REPRODUCIBLE, CheckOutcome, emission_exact
from coordinator_dagster.audit.ranking_check import ranking_reproducible
from coordinator_dagster.scoring.merkle import build_checkpoint_tree
from coordinator_dagster.partitions import CHECKPOINT_PARTITIONS, period_window
from coordinator_dagster.statuses import CheckpointStatus
from resources import Contract, LakeResource


def checkpoint_id(period_key: str) -> str:
    return f"CKP-{period_key}"


class CheckpointConfig(dg.Config):
    """Launch-time settings of one checkpoint (the Launchpad's config)."""

    pool_amount: int | None = Field(
        default=None,
        ge=0,
        description="the period's reward pool in its smallest unit (e.g. USDC micro-units); prizes are "
        "then computed in that unit. Unset: the reward rule's own pool_amount, if any.",
    )


def build_checkpoints_asset(partitions_def: dg.PartitionsDefinition, deps: list | None = None) -> dg.AssetsDefinition:
    # deps: what the graph shows the checkpoint built from (snapshots; a density competition's
    # checkpoints read its density round scores, through the leaderboard's windows).
    @dg.asset(
        name="checkpoints",
        partitions_def=partitions_def,
        deps=deps if deps is not None else [snapshots],
        kinds={"polars", "parquet"},
        group_name="pipeline",
        check_specs=[dg.AssetCheckSpec(name, asset="checkpoints", blocking=True) for name in CHECKPOINT_CHECKS],
    )
    def checkpoints(
        context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract, config: CheckpointConfig
    ) -> dg.MaterializeResult:
        """One row per checkpoint period (grain: checkpoint_id): the period's snapshots
        aggregated per model, ranked, and split into frac64 rewards by `build_emission`. With the
        production rule (`TopKPerGroup`) the entries are instead the period's leaderboards per
        group, and its payout table (paid and retained slots) goes to `checkpoint_payouts`; with a
        pool amount every share also has its prize in the pool's smallest unit.

        Built PENDING; once its status has moved on (SUBMITTED, CLAIMABLE, PAID, appended as
        checkpoint events) the checkpoint is immutable and re-materializing it is refused.
        Each build records its emission hash and its diff against the previous checkpoint
        (`checkpoint_reviews`); a rebuild that changes an approved emission revokes the approval.
        """
        store = lake.get(contract)
        key = context.partition_key
        cid = checkpoint_id(key)
        # The lock `confirm` and `approve` take: a confirm cannot slip between the status check
        # and the write, nor see the new emission before its approval is revoked.
        with store.partition_lock("checkpoint_events", cid):
            return _build(context, store, contract, config, partitions_def, key, cid)

    return checkpoints


def _build(context, store, contract, config: CheckpointConfig, partitions_def, key: str, cid: str) -> dg.MaterializeResult:
    status = store.checkpoint_status(cid)
    if not may_rebuild(status):
        raise dg.Failure(
            description=f"checkpoint {cid} is {status}: a checkpoint that has left PENDING is immutable "
            "and is not rebuilt (its emission may already be on-chain)",
            allow_retries=False,
        )
    start, end = period_window(partitions_def, key)
    period = store.read_window("snapshots", start, end, column="period_start")
    models = store.read("models")
    rule = contract.build_emission
    addresses = (contract.crunch_pubkey, contract.compute_provider, contract.data_provider)
    if isinstance(rule, TopKPerGroup):
        entries = group_lake.group_entries(contract, group_lake.checkpoint_rounds(store, contract, end), models, end)
        decided = rule.payouts(entries, *addresses, pool_amount=config.pool_amount)
        emission, rows, pool, unit = decided.emission, decided.rows, decided.pool_amount, rule.pool_unit
        ranking_key = f"{rule.group_by}:{rule.score_key}"
        paid = [
            {"model_id": r.model_id, "cruncher_index": r.cruncher_index, "cruncher": r.cruncher, "rank": r.slot}
            for r in rows
            if r.status == "paid"
        ]
    else:
        if contract.trading is not None:
            entries = trading_checkpoint_entries(store, contract, models, start, end)
        else:
            entries = ranking.checkpoint_entries(contract, period, models)
        emission = rule(entries, *addresses)
        pool, unit = config.pool_amount, ""
        rows = payouts.emission_rows(emission.model_dump(mode="json"), entries, pool)
        ranking_key = entries[0]["ranking_key"] if entries else contract.aggregation.value_field
        paid = entries
    tree = build_checkpoint_tree(period.to_dicts())
    emission_json = emission.model_dump(mode="json")
    payout_table = payouts.payout_frame(cid, rows, pool, unit)
    row = pl.DataFrame(
        {
            "checkpoint_id": [cid],
            "period_start": [start],
            "period_end": [end],
            "status": [CheckpointStatus.PENDING.value],
            "ranking_key": [ranking_key],
            "model_count": [len(entries)],
            "entries": [json.dumps(entries, sort_keys=True)],
            "emission": [json.dumps(emission_json, sort_keys=True)],
            "merkle_root": [tree.checkpoint_root],
        }
    )
    digest = review.emission_hash(emission_json)
    previous = review.previous_checkpoint(store, start)
    diff = review.checkpoint_diff(previous, row.row(0, named=True))
    previous_id = previous["checkpoint_id"] if previous else None
    review_row = pl.DataFrame(
        {"checkpoint_id": [cid], "emission_hash": [digest], "previous_checkpoint_id": [previous_id], "diff": [json.dumps(diff)]},
        schema=CHECKPOINT_REVIEWS,
    )
    store.write("checkpoint_payouts", payout_table, key)
    store.write("checkpoint_reviews", review_row, key)
    store.write("checkpoints", row, key)
    revoked = review.record_revocation_on_rebuild(store, cid, digest, f"dagster:run {context.run.run_id}", dt.datetime.now(dt.timezone.utc))
    store.ensure_catalog()
    total = sum(r["reward_pct"] for r in emission_json["cruncher_rewards"])
    if contract.trading is None:
        reproducible = ranking_reproducible(store, contract, start, end, period, entries)
    else:
        # A trading ranking comes from the replay of orders over the feed, which re-runs byte for
        # byte (assets.trading); the re-derivation from scores does not apply to it.
        reproducible = CheckOutcome(
            RANKING_REPRODUCIBLE, True, "trading: ranked by replayed net PnL, not re-derived from scores", {"first_difference": "not checked"}
        )
    shares = emission_markdown(emission_shares(paid, emission_json))
    return dg.MaterializeResult(
        check_results=[check_result(o) for o in [*emission_exact(emission_json, paid), reproducible]],
        metadata={
            "dagster/row_count": 1,
            "checkpoint_id": cid,
            "models_ranked": len(entries),
            "snapshots_used": period.height,
            "cruncher_reward_total": total,
            "merkle_root": tree.checkpoint_root or "no snapshots",
            "retained_pct": emission.retained_pct,
            "pool_amount": pool if pool is not None else "not given",
            "emission": dg.MetadataValue.md(shares),
            "payouts": dg.MetadataValue.md(payouts.payout_markdown(payout_table)),
            "emission_hash": digest,
            "previous_checkpoint": previous_id or "none",
            "diff": dg.MetadataValue.md(review.diff_markdown(previous_id, diff)),
            "approval": f"revoked: {revoked}" if revoked else "approve this emission_hash to confirm it",
        }
    )


checkpoints = build_checkpoints_asset(CHECKPOINT_PARTITIONS["weekly"])
