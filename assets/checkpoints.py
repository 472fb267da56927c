"""`checkpoints`: one emission checkpoint per checkpoint period."""

import json

import dagster as dg
import polars as pl

from assets.metadata import check_result, emission_markdown, emission_shares
from assets.snapshots import snapshots
from coordinator_dagster.scoring import ranking
from coordinator_dagster.checkpoint_lifecycle import may_rebuild
from coordinator_dagster.checks import CHECKPOINT_CHECKS, emission_exact
from coordinator_dagster.scoring.merkle import build_checkpoint_tree
from coordinator_dagster.partitions import CHECKPOINT_PARTITIONS, period_window
from coordinator_dagster.statuses import CheckpointStatus
from resources import Contract, LakeResource


def checkpoint_id(period_key: str) -> str:
    return f"CKP-{period_key}"


def build_checkpoints_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="checkpoints",
        partitions_def=partitions_def,
        deps=[snapshots],
        kinds={"polars", "parquet"},
        group_name="pipeline",
        check_specs=[dg.AssetCheckSpec(name, asset="checkpoints", blocking=True) for name in CHECKPOINT_CHECKS],
    )
    def checkpoints(context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract) -> dg.MaterializeResult:
        """One row per checkpoint period (grain: checkpoint_id): the period's snapshots
        aggregated per model, ranked, and split into frac64 rewards by `build_emission`.

        Built PENDING; once its status has moved on (SUBMITTED, CLAIMABLE, PAID, appended as
        checkpoint events) the checkpoint is immutable and re-materializing it is refused.
        """
        store = lake.get(contract)
        key = context.partition_key
        cid = checkpoint_id(key)
        status = store.checkpoint_status(cid)
        if not may_rebuild(status):
            raise dg.Failure(
                description=f"checkpoint {cid} is {status}: a checkpoint that has left PENDING is immutable "
                "and is not rebuilt (its emission may already be on-chain)",
                allow_retries=False,
            )
        start, end = period_window(partitions_def, key)
        period = store.read_window("snapshots", start, end, column="period_start")
        entries = ranking.checkpoint_entries(contract, period, store.read("models"))
        tree = build_checkpoint_tree(period.to_dicts())
        emission = contract.build_emission(entries, contract.crunch_pubkey, contract.compute_provider, contract.data_provider)
        emission_json = emission.model_dump(mode="json")
        row = pl.DataFrame(
            {
                "checkpoint_id": [cid],
                "period_start": [start],
                "period_end": [end],
                "status": [CheckpointStatus.PENDING.value],
                "ranking_key": [entries[0]["ranking_key"] if entries else contract.aggregation.value_field],
                "model_count": [len(entries)],
                "entries": [json.dumps(entries, sort_keys=True)],
                "emission": [json.dumps(emission_json, sort_keys=True)],
                "merkle_root": [tree.checkpoint_root],
            }
        )
        store.write("checkpoints", row, key)
        store.ensure_catalog()
        total = sum(r["reward_pct"] for r in emission_json["cruncher_rewards"])
        return dg.MaterializeResult(
            check_results=[check_result(o) for o in emission_exact(emission_json, entries)],
            metadata={
                "dagster/row_count": 1,
                "checkpoint_id": cid,
                "models_ranked": len(entries),
                "snapshots_used": period.height,
                "cruncher_reward_total": total,
                "merkle_root": tree.checkpoint_root or "no snapshots",
                "emission": dg.MetadataValue.md(emission_markdown(emission_shares(entries, emission_json))),
            }
        )

    return checkpoints


checkpoints = build_checkpoints_asset(CHECKPOINT_PARTITIONS["weekly"])
