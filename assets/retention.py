"""`feed_retention`: deletes the `feed_records` hours past FEED_RECORD_TTL_DAYS that no checkpoint
still needs (the rule: `coordinator_dagster.feeds.retention`); its materializations say what went."""

import datetime as dt

import dagster as dg
import polars as pl

from coordinator_dagster.feeds.granularity import granularity_seconds
from coordinator_dagster.feeds.retention import hours_to_prune, retention_cutoff
from coordinator_dagster.lake.layout import window_start_of_file
from coordinator_dagster.partitions import window_key
from resources import ClockResource, Contract, FeedSource, LakeResource

CHECKPOINT_COLUMNS = ["checkpoint_id", "period_start", "period_end", "status"]


def build_feed_retention_asset(ttl_days: int) -> dg.AssetsDefinition:
    # In the pipeline's group beside feed_records: with a second group the UI's global lineage
    # folds every group into one box, hiding the pipeline's shape.
    @dg.asset(name="feed_retention", group_name="pipeline", kinds={"parquet"})
    def feed_retention(
        context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract, clock: ClockResource, feed: FeedSource
    ) -> dg.MaterializeResult:
        """Deletes `feed_records` hours older than the TTL unless a checkpoint that is not PAID
        (or a period not yet checkpointed) may still need them; the metadata gives the range."""
        store = lake.get(contract)
        checkpoints = store.query(f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM checkpoints") if store.has_files("checkpoints") else pl.DataFrame()
        history = dt.timedelta(seconds=contract.input_window_span(granularity_seconds(feed.granularity)))
        decision = retention_cutoff(clock.now(), ttl_days, checkpoints, history)
        stored = [h for h in (window_start_of_file(p) for p in store.files("feed_records")) if h is not None]
        keys = [window_key(h) for h in hours_to_prune(stored, decision.cutoff)]
        removed = store.remove_windows("feed_records", keys)
        store.ensure_catalog()
        pruned = f"{removed[0]} … {removed[-1]}" if removed else "nothing"
        context.log.info(f"feed_retention: pruned {len(removed)} hours ({pruned}); {decision.reason}")
        return dg.MaterializeResult(
            metadata={
                "pruned": pruned,
                "hours_pruned": len(removed),
                "pruned_from": removed[0] if removed else "none",
                "pruned_through": removed[-1] if removed else "none",
                "cutoff": decision.cutoff.isoformat() if decision.cutoff else "none",
                "ttl_cutoff": decision.ttl_cutoff.isoformat(),
                "ttl_days": ttl_days,
                "reason": decision.reason,
            }
        )

    return feed_retention
