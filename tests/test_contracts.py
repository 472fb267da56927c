"""The contract: defaults as the reference engine has them, overrides and start-up errors."""

import re

import numpy as np
import pytest

from coordinator_dagster.contracts import (
    ContractError,
    CrunchContract,
    InferenceOutput,
    LaxInferenceOutput,
    RawInput,
    ScoreResult,
    default_contract,
    load_contract,
)
from coordinator_dagster.models.runner import InProcessRunner, ModelSpec, validate_output
from coordinator_dagster.scoring.emission import default_build_emission
from coordinator_dagster.scoring.scores import default_resolve_ground_truth, default_scoring_function
from coordinator_dagster.scoring.snapshots import default_aggregate_snapshot

# Used by the override tests through CRUNCH_CONFIG_MODULE=tests.test_contracts:...
CUSTOM = CrunchContract(crunch_pubkey="CustomPubkey", checkpoint_period="daily")


def custom_factory() -> CrunchContract:
    return CrunchContract(crunch_pubkey="FromFactory")


def two_arg_score(prediction, ground_truth):
    return {"value": 1.0}


NOT_A_CONTRACT = 42


def test_defaults_follow_the_reference_engine():
    contract = CrunchContract()
    assert contract.raw_input_type is RawInput
    assert contract.output_type is InferenceOutput
    assert contract.score_type is ScoreResult
    assert contract.aggregation.windows == {"score_recent": 24, "score_steady": 72, "score_anchor": 168}
    assert contract.aggregation.ranking_key == "score_recent"
    assert contract.aggregation.ranking_direction == "desc"
    assert contract.aggregation.value_field == "value"
    [scheduled] = contract.scheduled_predictions
    assert (scheduled.scope.subject, scheduled.prediction_interval_seconds, scheduled.resolve_horizon_seconds) == ("BTC", 60, 60)
    assert contract.metrics == ["ic", "ic_sharpe", "hit_rate", "max_drawdown", "model_correlation"]
    assert contract.ensembles == []
    assert contract.crunch_pubkey == ""
    assert contract.resolve_ground_truth is default_resolve_ground_truth
    assert contract.scoring_function is default_scoring_function
    assert contract.aggregate_snapshot is default_aggregate_snapshot
    assert contract.build_emission is default_build_emission
    assert contract.max_ground_truth_staleness_fraction == 0.2


def test_embedded_default_schedules_btc_and_eth():
    contract = load_contract("")
    assert contract.subjects == ["BTC", "ETH"]
    assert contract == default_contract()


def test_output_type_refuses_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        InferenceOutput(value=float("nan"))
    assert InferenceOutput.model_validate({"value": 1.5, "confidence": 0.3}).model_dump() == {"value": 1.5, "confidence": 0.3}


@pytest.mark.parametrize(
    ("raw", "shown"),
    [({"value": "0.3"}, "str '0.3'"), ({"value": True}, "bool True"), ({"value": None}, "NoneType None"), ({"value": [1.0]}, "list [1.0]")],
)
def test_the_default_output_type_wants_a_number(raw, shown):
    # pydantic's lax parsing would read "0.3" as 0.3 and true as 1.0: a model answering text or
    # a flag is broken, and its prediction fails with the reason instead.
    with pytest.raises(ValueError, match=f"value: a number is required, got {re.escape(shown)}"):
        validate_output(raw, InferenceOutput)
    assert validate_output({"value": 2}, InferenceOutput) == (2.0, '{"value":2.0}')
    assert validate_output({"value": np.float32(0.5)}, InferenceOutput) == (0.5, '{"value":0.5}')


def test_a_contract_opts_into_lax_parsing():
    assert validate_output({"value": "0.3"}, LaxInferenceOutput) == (0.3, '{"value":0.3}')
    assert validate_output({"value": True}, LaxInferenceOutput) == (1.0, '{"value":1.0}')

    class WithConfidence(InferenceOutput):  # subclasses inherit the strictness
        confidence: float = 1.0

    with pytest.raises(ValueError, match="confidence"):
        WithConfidence.model_validate({"value": 0.1, "confidence": "high"})


class AnswersText:
    def tick(self, data):
        pass

    def predict(self, subject, resolve_horizon_seconds, step_seconds):
        return {"value": "0.3"}


def test_a_model_answering_text_fails_its_prediction_with_the_reason():
    spec = ModelSpec("text", "Text", "x", 0, "tests.test_contracts:AnswersText")
    runner = InProcessRunner([spec], InferenceOutput, timeout_seconds=5)
    try:
        [outcome] = runner.predict_round({"subject": "BTC", "round_ts": "2026-11-20T10:00:00+00:00", "candles": []}, 60, 60)
    finally:
        runner.close()
    assert outcome.status == "FAILED" and outcome.value is None
    assert outcome.failed_reason == (
        "output does not match InferenceOutput: value: a number is required, got str '0.3' (outputs are parsed strictly)"
    )


def test_override_through_the_environment(monkeypatch):
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", "tests.test_contracts:CUSTOM")
    contract = load_contract()
    assert contract.crunch_pubkey == "CustomPubkey"
    assert contract.checkpoint_period == "daily"


def test_override_with_a_factory(monkeypatch):
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", "tests.test_contracts:custom_factory")
    assert load_contract().crunch_pubkey == "FromFactory"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module:contract", "cannot import module"),
        ("tests.test_contracts:missing", "has no attribute"),
        ("tests.test_contracts:NOT_A_CONTRACT", "not a CrunchContract"),
        ("justtext", "not a 'module:attribute' path"),
    ],
)
def test_bad_override_is_a_clear_startup_error(monkeypatch, spec, message):
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", spec)
    with pytest.raises(ContractError, match=message):
        load_contract()


def test_callables_resolve_from_dotted_paths():
    contract = CrunchContract(scoring_function="tests.test_contracts:two_arg_score")
    assert contract.scoring_function is two_arg_score


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("scoring_function", lambda prediction: 0, "must accept \\(prediction, ground_truth\\)"),
        ("build_emission", lambda entries: None, "must accept \\(ranked_entries, crunch_pubkey\\)"),
        ("aggregate_snapshot", 3, "not callable"),
        ("resolve_ground_truth", "tests.test_contracts:nowhere", "has no attribute"),
    ],
)
def test_wrong_callables_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        CrunchContract(**{field: value})


def test_ranking_key_must_exist():
    with pytest.raises(ValueError, match="ranking_key"):
        CrunchContract(aggregation={"ranking_key": "nope"})
    assert CrunchContract(aggregation={"ranking_key": "hit_rate"}).aggregation.ranking_key == "hit_rate"


def test_unknown_metric_and_duplicate_scope_are_refused():
    with pytest.raises(ValueError, match="unknown metrics"):
        CrunchContract(metrics=["ic", "astrology"])
    scheduled = CrunchContract().scheduled_predictions[0]
    with pytest.raises(ValueError, match="unique"):
        CrunchContract(scheduled_predictions=[scheduled, scheduled])


def test_contribution_weighted_emission_is_available_by_path():
    from coordinator_dagster.scoring.emission import contribution_weighted_emission

    contract = CrunchContract(build_emission="coordinator_dagster.scoring.emission:contribution_weighted_emission")
    assert contract.build_emission is contribution_weighted_emission
