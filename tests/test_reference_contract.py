"""Contract modules written for the reference engine load unchanged through `crunch_node.crunch_config`."""

from pathlib import Path

import pytest

from coordinator_dagster.contracts import ContractError, CrunchContract, load_contract
from coordinator_dagster.domain_types import Aggregation, AggregationWindow

PACK = Path(__file__).parent / "reference_pack"


@pytest.fixture
def pack(monkeypatch):
    monkeypatch.syspath_prepend(str(PACK))


def test_the_reference_class_name_loads_from_the_environment(pack, monkeypatch):
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", "refcomp.config:CrunchConfig")
    contract = load_contract()
    assert isinstance(contract, CrunchContract)
    assert contract.aggregation.windows == {"score_6h": 6}
    [schedule] = contract.scheduled_predictions
    # A scope given as a bare subject takes the reference's step and the schedule's horizon.
    assert (schedule.scope.subject, schedule.scope.step_seconds, schedule.scope.horizon_seconds) == ("BTCUSDT", 15, 120)
    assert contract.subjects == ["BTCUSDT"]


def test_the_scoring_function_receives_typed_models(pack):
    contract = load_contract("refcomp.config:CrunchConfig")
    # 0.5 × 2 % × 100 = 1.0; the function reads attributes, so it got models, not dicts.
    result = contract.scoring_function({"value": 0.5, "extra": 1}, {"profit": 0.02, "entry_price": 100.0, "resolved_price": 102.0})
    assert result.value == pytest.approx(1.0)
    failed = contract.scoring_function({"value": 0.5}, {"profit": 0.0, "entry_price": 0.0})
    assert (failed.success, failed.failed_reason) == (False, "no entry price")


def test_window_objects_are_hours():
    assert Aggregation(windows={"w": AggregationWindow(hours=24), "v": 3}, ranking_key="w").windows == {"w": 24, "v": 3}
    with pytest.raises(ValueError):
        AggregationWindow(hours=0)


@pytest.mark.parametrize(
    ("attr", "named"),
    [
        ("WithHooks", "realtime_service"),
        ("WithInputType", "input_type"),
        ("Tournament", "predict_service_class"),
    ],
)
def test_fields_not_honoured_are_start_up_errors_naming_them(pack, attr, named):
    with pytest.raises(ContractError, match=named):
        load_contract(f"refcomp.config:{attr}")


def test_reference_fields_at_other_values_are_refused_by_name():
    from crunch_node.crunch_config import CallMethodArg, CallMethodConfig, CrunchConfig

    with pytest.raises(ValueError, match="call_method trade"):
        CrunchConfig(call_method=CallMethodConfig(method="trade", args=[CallMethodArg(name="symbol")]))
    with pytest.raises(ValueError, match="feed_normalizer"):
        CrunchConfig(feed_normalizer="orderbook")
    with pytest.raises(ValueError, match="feed_subject_mapping"):
        CrunchConfig(feed_subject_mapping={"BTCUSDT": "BTC"})
    with pytest.raises(ValueError, match="compute_metrics"):
        CrunchConfig(compute_metrics=lambda *a: {})
    assert CrunchConfig(feed_normalizer="tick").feed_normalizer == "tick"


def test_the_compatibility_path_names_every_building_block():
    import crunch_node.crunch_config as ref

    for name in ("CrunchConfig", "Aggregation", "AggregationWindow", "PerformanceConfig", "ScheduledPrediction",
                 "ScoringFunction", "PredictionScope", "EnsembleConfig", "CallMethodArg", "CallMethodConfig"):
        assert hasattr(ref, name), name
