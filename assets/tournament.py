"""Tournament rounds as assets: one dynamic partition per round id, the same chain as a feed
competition's (inputs → predictions → scores → snapshots → leaderboard → checkpoints), each asset
a thin wrapper over `coordinator_dagster.tournament_rounds`.

A round's features and truth come from the operator's uploads
(`$COORDINATOR_HOME/tournament/uploads/<round_id>/{features,truth}.json`, which the round sensor
watches) or from the report API's tournament routes, which run the same steps.
"""



import dagster as dg

from coordinator_dagster import tournament_rounds as rounds
from coordinator_dagster.partitions import TOURNAMENT_ROUNDS
from coordinator_dagster.scoring.tournament import RoundError
from coordinator_dagster.tournament_lake import RoundLake
from coordinator_dagster.tournament_reports import PREFIX
from resources import ClockResource, Contract, LakeResource
from resources.tournament import TournamentModels

GROUP = "tournament"
_COMMON = {"partitions_def": TOURNAMENT_ROUNDS, "key_prefix": [PREFIX], "group_name": GROUP, "kinds": {"polars", "parquet"}}


def _lake(lake: LakeResource) -> RoundLake:
    return RoundLake(lake.home)


def _failure(exc: Exception) -> dg.Failure:
    return dg.Failure(description=str(exc))


@dg.asset(**_COMMON)
def inputs(context: dg.AssetExecutionContext, lake: LakeResource, clock: ClockResource) -> dg.MaterializeResult:
    """One row per uploaded sample of the round (its features and sample id)."""
    store, round_id = _lake(lake), context.partition_key
    try:
        samples = rounds.record_features(store, round_id, rounds.read_upload(store, round_id, "features"), clock.now())
    except RoundError as exc:
        raise _failure(exc) from exc
    return dg.MaterializeResult(metadata={"samples": samples.height})


@dg.asset(deps=[inputs], **_COMMON)
def predictions(context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract, tournament_models: TournamentModels) -> dg.MaterializeResult:
    """One row per model per sample: PENDING with the answer, or FAILED with the reason. Recorded
    once: a round already predicted (by the API or an earlier run) is kept as it is."""
    store, round_id = _lake(lake), context.partition_key
    if store.has_round("predictions", round_id):
        frame = store.read_round("predictions", round_id)
        return dg.MaterializeResult(metadata={"predictions": frame.height, "recorded_before": True})
    try:
        with tournament_models.runner() as runner:
            frame = rounds.run_inference(store, round_id, runner, rounds.output_validator(contract.output_type))
    except RoundError as exc:
        raise _failure(exc) from exc
    counts = dict(frame.group_by("status").len().iter_rows())
    return dg.MaterializeResult(metadata={"predictions": frame.height, **{f"status_{k}": v for k, v in counts.items()}})


@dg.asset(deps=[predictions], **_COMMON)
def scores(context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract) -> dg.MaterializeResult:
    """One row per PENDING prediction whose sample has truth, matched by sample id."""
    store, round_id = _lake(lake), context.partition_key
    try:
        rounds.record_truth(store, round_id, rounds.read_upload(store, round_id, "truth"))
        frame = rounds.score(store, round_id, contract.scoring_function)
    except RoundError as exc:
        raise _failure(exc) from exc
    return dg.MaterializeResult(metadata={"scores": frame.height, "failed": frame.filter(~frame["success"]).height})


@dg.asset(deps=[scores], **_COMMON)
def snapshots(context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract, clock: ClockResource) -> dg.MaterializeResult:
    """One row per model of the round: its counts and mean score."""
    frame = rounds.snapshots(_lake(lake), context.partition_key, contract, clock.now())
    return dg.MaterializeResult(metadata={"models": frame.height})


@dg.asset(deps=[snapshots], **_COMMON)
def leaderboard(context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract) -> dg.MaterializeResult:
    """The leaderboard over every round, as of this round's snapshots (one row per model)."""
    frame = rounds.leaderboard(_lake(lake), contract)
    return dg.MaterializeResult(metadata={"models": frame.height, "leader": frame["model_id"][0] if frame.height else ""})


@dg.asset(deps=[leaderboard], **_COMMON)
def checkpoints(
    context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract, tournament_models: TournamentModels, clock: ClockResource
) -> dg.MaterializeResult:
    """The round's emission checkpoint (one row); kept as it is once it left PENDING."""
    store, round_id = _lake(lake), context.partition_key
    try:
        frame = rounds.checkpoint(store, round_id, contract, tournament_models.specs(), clock.now())
    except RoundError as exc:
        raise _failure(exc) from exc
    status = rounds.checkpoint_status(store, round_id)
    return dg.MaterializeResult(metadata={"status": status.value if status else "", "merkle_root": frame["merkle_root"][0] or ""})


tournament_assets = [inputs, predictions, scores, snapshots, leaderboard, checkpoints]
INFERENCE_ASSETS = [a.key for a in (inputs, predictions)]
SCORING_ASSETS = [a.key for a in (scores, snapshots, leaderboard, checkpoints)]

# One job over the whole chain; the sensor asks for the inference half or the scoring half.
tournament_round_job = dg.define_asset_job("tournament_round_job", selection=dg.AssetSelection.assets(*tournament_assets))


