"""A tournament round through the lake: predictions once per model per sample, scores matched by
sample id (a FAILED sample shifts nothing), snapshots, the leaderboard, the round's checkpoint, and
truth that can no longer change once the checkpoint left PENDING. The models run in worker
processes (`models.tournament_calls`), as on a node."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from coordinator_dagster import tournament_rounds as rounds
from coordinator_dagster.checkpoint_lifecycle import Conflict
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.scoring.tournament import TruthLocked
from coordinator_dagster.tournament_lake import BadRoundId, RoundLake
from coordinator_dagster.models.tournament_calls import LocalTournamentRunner
from coordinator_dagster.models.worker_handle import PoolSettings
from tests.tournament_fixtures import HOUSES, PRICES, build_contract, write_manifest

pytestmark = pytest.mark.process  # the models run in worker processes

T0 = dt.datetime(2026, 11, 20, 12, tzinfo=dt.timezone.utc)


@pytest.fixture
def node(tmp_path):
    specs = load_manifest(write_manifest(tmp_path))
    contract = build_contract()
    runner = LocalTournamentRunner(specs, PoolSettings(timeout_seconds=30.0))
    yield RoundLake(tmp_path / "home"), contract, specs, runner, rounds.output_validator(contract.output_type)
    runner.close()


def predict(node, round_id="r1", houses=HOUSES):
    lake, contract, specs, models, validate = node
    rounds.record_features(lake, round_id, houses, T0)
    return rounds.run_inference(lake, round_id, models, validate)


def test_a_failed_sample_does_not_shift_the_other_scores(node):
    lake, contract, specs, *_ = node
    predictions = predict(node)
    assert predictions.height == 4 * 3  # one per model per sample
    flaky = predictions.filter(model_id="flaky").sort("sample_id")
    assert flaky["status"].to_list() == ["PENDING", "FAILED", "PENDING", "PENDING"]

    # The truth arrives in another order than the features: matched by sample id.
    scores = rounds.score_and_publish(lake, "r1", contract, specs, PRICES[::-1], T0 + dt.timedelta(hours=1))
    flaky_scores = scores.filter(model_id="flaky").sort("sample_id")
    assert flaky_scores["sample_id"].to_list() == ["h1", "h3", "h4"]
    assert flaky_scores["value"].to_list() == [1.0, 1.0, 1.0]  # a positional zip would give h3 h2's price
    assert [json.loads(r)["actual_price"] for r in flaky_scores["result"]] == [200_000.0, 400_000.0, 500_000.0]
    # median: 350,000 against 200k, 300k, 400k, 500k → 1 - |Δ|/price
    median = scores.filter(model_id="median").sort("sample_id")["value"].to_list()
    assert median == [0.25, pytest.approx(1 - 50_000 / 300_000), 0.875, 0.7]

    state = rounds.status(lake, "r1")
    assert state["by_status"] == {"FAILED": 1, "SCORED": 11}
    assert state["status"] == "scored" and state["checkpoint_status"] == "PENDING"

    snaps = lake.read_round("snapshots", "r1").sort("model_id")
    assert snaps["model_id"].to_list() == ["exact", "flaky", "median"]
    assert snaps["failed_count"].to_list() == [0, 1, 0]
    assert snaps["value"].to_list()[:2] == [1.0, 1.0]

    board = lake.read_leaderboard()
    assert board["model_id"].to_list() == ["exact", "flaky", "median"]  # tie on 1.0: more predictions first
    assert board["rank"].to_list() == [1, 1, 2]

    [checkpoint] = lake.read_round("checkpoints", "r1").iter_rows(named=True)
    emission = json.loads(checkpoint["emission"])
    rewards = {r["cruncher_index"]: r["reward_pct"] for r in emission["cruncher_rewards"]}
    assert sum(rewards.values()) == FRAC64_MULTIPLIER
    # The two exact models share rank 1 (the rounding remainder goes to the first listed).
    assert abs(rewards[0] - rewards[1]) <= 1 and rewards[1] > rewards[2]


def test_truth_is_locked_once_the_checkpoint_left_pending(node):
    lake, contract, specs, *_ = node
    predict(node)
    rounds.score_and_publish(lake, "r1", contract, specs, PRICES, T0)
    wrong = [dict(p, price=p["price"] * 2) for p in PRICES]
    # While PENDING the operator may correct the truth: the round is re-scored.
    rescored = rounds.score_and_publish(lake, "r1", contract, specs, wrong, T0)
    assert rescored.filter(model_id="exact")["value"].to_list() == [0.5] * 4
    rounds.score_and_publish(lake, "r1", contract, specs, PRICES, T0)

    assert rounds.change_checkpoint_status(lake, "r1", "SUBMITTED", "tx1", "test", T0) == "SUBMITTED"
    before = lake.read_round("scores", "r1")
    with pytest.raises(TruthLocked, match="SUBMITTED"):
        rounds.score_and_publish(lake, "r1", contract, specs, wrong, T0)
    assert lake.read_round("scores", "r1").equals(before)
    assert lake.read_round("truth", "r1").sort("sample_id")["truth"].to_list() == [json.dumps(p, sort_keys=True) for p in PRICES]
    # The same truth again is accepted and changes nothing.
    again = rounds.score_and_publish(lake, "r1", contract, specs, PRICES, T0)
    assert again.equals(before)
    with pytest.raises(Conflict):
        rounds.change_checkpoint_status(lake, "r1", "PENDING", None, "test", T0)


def test_a_round_is_predicted_once_and_ids_are_checked(node):
    lake, *_ = node
    predict(node)
    with pytest.raises(rounds.RoundExists):
        predict(node)
    with pytest.raises(rounds.RoundExists):
        predict(node, houses=HOUSES[:2])
    with pytest.raises(BadRoundId):
        predict(node, round_id="../escape")
    with pytest.raises(rounds.RoundNotFound):
        rounds.record_truth(lake, "never", PRICES)


def test_the_leaderboard_spans_rounds(node):
    lake, contract, specs, *_ = node
    predict(node, "r1")
    rounds.score_and_publish(lake, "r1", contract, specs, PRICES, T0)
    predict(node, "r2")
    rounds.score_and_publish(lake, "r2", contract, specs, [dict(p, price=350_000.0) for p in PRICES], T0 + dt.timedelta(hours=30))
    board = lake.read_leaderboard()
    assert board["model_id"].to_list()[0] == "median"  # perfect in r2, the only round in the last 24 h
    assert board.filter(model_id="median")["rounds"].item() == 2
    assert board.filter(model_id="median")["score_recent"].item() == 1.0
    # exact: 1.0 in r1; in r2 (every price 350k) 1 - 150/350, 1 - 50/350, 1 - 50/350, 1 - 150/350.
    r2 = (2 * (1 - 150 / 350) + 2 * (1 - 50 / 350)) / 4
    assert board.filter(model_id="exact")["score_recent"].item() == pytest.approx(r2)
    assert board.filter(model_id="exact")["score_steady"].item() == pytest.approx((1.0 + r2) / 2)


def test_a_reference_style_tournament_config_loads_and_scores_with_typed_models(tmp_path, monkeypatch):
    """The reference's tournament shape (TournamentPredictService, predict(features), no scheduled
    predictions, a scoring function over pydantic models) loads as a tournament contract."""
    from coordinator_dagster.contracts import load_contract

    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent / "reference_pack"))
    contract = load_contract("reftour.config:CrunchConfig")
    assert rounds.is_tournament(contract)
    lake = RoundLake(tmp_path / "home")
    specs = load_manifest(write_manifest(tmp_path))
    rounds.record_features(lake, "r1", HOUSES, T0)
    runner = LocalTournamentRunner(specs, PoolSettings(timeout_seconds=30.0))
    try:
        rounds.run_inference(lake, "r1", runner, rounds.output_validator(contract.output_type))
    finally:
        runner.close()
    scores = rounds.score_and_publish(lake, "r1", contract, specs, PRICES, T0)
    assert scores.filter(model_id="median").sort("sample_id")["value"].to_list() == [0.25, pytest.approx(5 / 6), 0.875, 0.7]
    assert scores["success"].all()


def test_a_reference_tournament_config_with_scheduled_predictions_is_refused():
    from crunch_node.crunch_config import ScheduledPrediction
    from tests.reference_pack.reftour.config import CrunchConfig

    with pytest.raises(ValueError, match="scheduled_predictions"):
        CrunchConfig(scheduled_predictions=[ScheduledPrediction(scope_key="btc", scope={"subject": "BTC"}, prediction_interval_seconds=60, resolve_horizon_seconds=60)])
