"""Density competitions (a contract with prediction profiles): `density_predictions` (every
tracker's answer to every profile round) and `density_round_scores` (CRPS, normalised per round),
thin wrappers over `coordinator_dagster.density_pipeline`."""

import dagster as dg
import polars as pl

from assets.feeds import feed_records
from assets.metadata import counts_by, table_metadata
from coordinator_dagster import density_pipeline
from coordinator_dagster.lake import schemas
from coordinator_dagster.models.prediction_rows import registry
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG, parse_round_stamp
from coordinator_dagster.partitions import WINDOW_PARTITIONS, window_keys_between
from resources import ClockResource, Contract, LakeResource
from resources.density import DensityTrackers

# A round's truth is one horizon later (up to a day for Synth's 24 h profile): scoring an hour
# reads the feed of the hours after it.
_TRUTH_HOURS = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=25)


@dg.asset(
    partitions_def=WINDOW_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[feed_records],
    kinds={"polars", "parquet"},
    group_name="pipeline",
)
def density_predictions(
    context: dg.AssetExecutionContext, density_trackers: DensityTrackers, lake: LakeResource, clock: ClockResource, contract: Contract,
) -> dg.MaterializeResult:
    """One row per model per profile round (grain: model_id × profile × subject × performed_at).

    Status as recorded: PENDING (valid densities, stored checked and rounded as JSON), FAILED
    (the tracker raised or answered an invalid density, with the reason) or ABSENT (no answer
    within the profile's deadline, or a round the node missed). Each round is asked once: a
    re-materialization only adds the due rounds the hour lacks. A live run (tagged with its
    round by the density predict sensor) records rounds more than one interval older as missed.
    """
    store = lake.get(contract)
    window = context.partition_time_window
    now = clock.now()
    tag = context.run.tags.get(LIVE_ROUND_TAG)
    live_round = parse_round_stamp(tag) if tag else None
    driver = density_trackers.open(contract)
    try:
        written = [density_pipeline.predict_hour(store, contract, driver, key, now, live_round) for key in window_keys_between(window.start, window.end)]
    finally:
        driver.close()
    with store.partition_lock("models"):
        store.write("models", registry(density_trackers.specs(), {}, store.read("models"), now))
    store.ensure_catalog()
    new_rows = pl.concat(written) if written else schemas.empty(schemas.DENSITY_PREDICTIONS)
    context.log.info(f"density predictions: {new_rows.height} new answers {counts_by(new_rows, 'status')}")
    return dg.MaterializeResult(
        metadata=table_metadata(
            new_rows.drop("densities"),
            partitions=len(written),
            new_predictions=new_rows.height,
            new_by_status=counts_by(new_rows, "status"),
            warm_up_prices={m: n for m, _, n in reversed(driver.ticks)} if driver.ticks else {},
        )
    )


@dg.asset(
    partitions_def=WINDOW_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[density_predictions, dg.AssetDep(feed_records, partition_mapping=_TRUTH_HOURS)],
    kinds={"polars", "parquet"},
    group_name="pipeline",
)
def density_round_scores(context: dg.AssetExecutionContext, lake: LakeResource, clock: ClockResource, contract: Contract) -> dg.MaterializeResult:
    """One row per model per resolved round (grain: model_id × subject × horizon × performed_at):
    Σ CRPS over the round's densities / the asset's half-width, and the score normalised in the
    round (best 1, 95th percentile and worse 0; a FAILED or ABSENT answer gets the round's worst
    CRPS and 0). Recomputed whole for the window's rounds whose truth has landed."""
    store = lake.get(contract)
    window = context.partition_time_window
    out = density_pipeline.score_window(store, contract, window.start, window.end, clock.now())
    store.ensure_catalog()
    return dg.MaterializeResult(
        metadata=table_metadata(
            out.drop("failed_reason"),
            partitions=len(window_keys_between(window.start, window.end)),
            by_status=counts_by(out, "status"),
            mean_score=float(out["score"].mean()) if out.height else None,
        )
    )


density_window_assets = [density_predictions, density_round_scores]
