"""The orchestrator runner against loopback stand-ins: a WebSocket orchestrator sending the
orchestrator's events and gRPC model nodes serving the public protocol (tests/orchestrator_standin.py)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from coordinator_dagster.domain_types import InferenceOutput
from coordinator_dagster.models.examples import ContrarianTracker, MeanReversionTracker, MomentumTracker
from coordinator_dagster.models.orchestrator.events import FailureCode
from coordinator_dagster.models.orchestrator.config import OrchestratorConfig, OrchestratorError
from coordinator_dagster.models.orchestrator.runner import OrchestratorRunner, report_failures
from coordinator_dagster.models.runner import EXAMPLE_MODELS, InProcessRunner
from coordinator_dagster.statuses import PredictionStatus
from tests.orchestrator_standin import ModelNode, StandInOrchestrator, entry

pytestmark = pytest.mark.process

TRACKER_BASE = "coordinator_dagster.models.tracker.TrackerBase"
CRUNCH = "synth-test"


def payloads(rounds: int, subject: str = "BTC") -> list[dict[str, Any]]:
    """Round inputs as the predictions asset builds them (`raw_input`): a sliding window of closes."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    closes = [100.0 + 3.0 * ((i * 7919) % 11 - 5) / 10 + i * 0.05 for i in range(rounds + 40)]
    out = []
    for r in range(rounds):
        window = range(r, r + 40)
        out.append({
            "subject": subject, "round_ts": (start + dt.timedelta(minutes=r + 40)).isoformat(), "step_seconds": 60, "horizon_seconds": 60,
            "candles": [{"ts": (start + dt.timedelta(minutes=i)).isoformat(), "close": closes[i]} for i in window],
        })
    return out


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


class Setup:
    def __init__(self) -> None:
        self.nodes: list[ModelNode] = []
        self.orchestrators: list[StandInOrchestrator] = []
        self.runners: list[OrchestratorRunner] = []

    def node(self, factory: Callable[[], Any] = MomentumTracker, **kw: Any) -> ModelNode:
        self.nodes.append(ModelNode(factory, **kw))
        return self.nodes[-1]

    def orchestrator(self, *models: dict[str, Any]) -> StandInOrchestrator:
        self.orchestrators.append(StandInOrchestrator(CRUNCH, list(models)))
        return self.orchestrators[-1]

    def runner(self, orchestrator: StandInOrchestrator, **kw: Any) -> OrchestratorRunner:
        options = {"host": "127.0.0.1", "port": orchestrator.port, "crunch_id": CRUNCH, "base_classname": TRACKER_BASE, "timeout_seconds": 5.0} | kw
        self.runners.append(OrchestratorRunner(OrchestratorConfig(**options), InferenceOutput))
        return self.runners[-1]


@pytest.fixture
def setup() -> Iterator[Setup]:
    made = Setup()
    yield made
    for runner in made.runners:
        runner.close()
    for node in made.nodes:
        node.stop()
    for orchestrator in made.orchestrators:
        orchestrator.close()


def by_model(outcomes: list) -> dict[str, Any]:
    return {o.model_id: o for o in outcomes}


def test_a_demo_round_gives_the_same_predictions_as_our_own_runner(setup):
    trackers = {"momentum": MomentumTracker, "mean-reversion": MeanReversionTracker, "contrarian": ContrarianTracker}
    nodes = {mid: setup.node(cls, class_name=TRACKER_BASE) for mid, cls in trackers.items()}
    orchestrator = setup.orchestrator(*(entry(mid, node, wallet=f"W-{mid}") for mid, node in nodes.items()))
    runner = setup.runner(orchestrator, cruncher_indexes={"W-momentum": 7, "cid-contrarian": 2})
    own = InProcessRunner(EXAMPLE_MODELS, InferenceOutput, 5.0)
    try:
        for payload in payloads(25):
            remote = by_model(runner.predict_round(payload, 60, 60))
            local = by_model(own.predict_round(payload, 60, 60))
            assert set(remote) == set(local) == set(trackers)
            for mid in trackers:
                assert remote[mid].status == local[mid].status == PredictionStatus.PENDING
                assert (remote[mid].value, remote[mid].output) == (local[mid].value, local[mid].output)
    finally:
        own.close()
    assert any(o.value != 0.0 for o in remote.values())  # the models really computed something
    assert all(node.setups == 1 and node.calls[:2] == ["tick", "predict"] for node in nodes.values())
    specs = {s.model_id: s for s in runner.specs}
    assert (specs["momentum"].name, specs["momentum"].cruncher, specs["momentum"].cruncher_index) == ("momentum model", "cruncher of momentum", 7)
    assert specs["contrarian"].cruncher_index == 2  # found by cruncher id
    assert specs["mean-reversion"].cruncher_index is None  # unknown: emission will refuse rather than guess
    assert specs["momentum"].entrypoint == "orchestrator:dep-momentum"
    assert runner.statuses == {mid: "healthy" for mid in trackers}


def test_reference_models_get_feed_update_with_the_reference_shape(setup):
    seen: list[Any] = []

    class ReferenceStyle:
        def feed_update(self, data: dict) -> None:
            seen.append(data)

        def predict(self, subject: str, horizon: int, step: int) -> dict:
            return {"value": float(len(seen[-1]["candles_1m"]))}

    node = setup.node(ReferenceStyle, class_name="cruncher.ModelBaseClass")
    runner = setup.runner(setup.orchestrator(entry("ref", node)), base_classname="cruncher.ModelBaseClass")
    [outcome] = runner.predict_round(payloads(1)[0], 60, 60)
    assert (outcome.status, outcome.value) == (PredictionStatus.PENDING, 40.0)
    assert node.calls == ["feed_update", "predict"] and seen[0]["symbol"] == "BTC" and set(seen[0]["candles_1m"][0]) >= {"ts", "close"}


def test_a_model_that_times_out_is_absent_then_reported_multiple_timeout(setup):
    good, slow = setup.node(), setup.node()
    slow.hang.set()
    orchestrator = setup.orchestrator(entry("good", good), entry("slow", slow))
    runner = setup.runner(orchestrator, timeout_seconds=1.0, failure_limit=2)
    first = by_model(runner.predict_round(payloads(1)[0], 60, 60))
    assert first["good"].status == PredictionStatus.PENDING
    assert first["slow"].status == PredictionStatus.ABSENT and "no answer within 1 s" in first["slow"].failed_reason
    assert orchestrator.failures() == []
    second = by_model(runner.predict_round(payloads(2)[1], 60, 60))
    assert second["slow"].status == PredictionStatus.ABSENT
    assert orchestrator.wait_for_failures(1) == [("slow", "MULTIPLE_TIMEOUT")]
    assert "2 consecutive rounds" in orchestrator.received[0]["data"][0]["failure_reason"]
    assert orchestrator.received[0]["data"][0]["ip"] == "127.0.0.1"
    assert [(r.model_id, r.deployment_id, r.code) for r in runner.reports] == [("slow", "dep-slow", FailureCode.MULTIPLE_TIMEOUT)]
    # Reported: the node stops calling it (the orchestrator stops the model).
    assert [o.model_id for o in runner.predict_round(payloads(3)[2], 60, 60)] == ["good"]


def test_a_wrong_type_answer_fails_and_repeated_ones_are_a_bad_implementation(setup):
    node = setup.node()
    node.answer = "0.3"  # a string where the contract asks for {"value": float}
    orchestrator = setup.orchestrator(entry("m", node))
    runner = setup.runner(orchestrator, failure_limit=2)
    for payload in payloads(2):
        [outcome] = runner.predict_round(payload, 60, 60)
        assert outcome.status == PredictionStatus.FAILED and "invalid output" in outcome.failed_reason
    assert orchestrator.wait_for_failures(1) == [("m", "BAD_IMPLEMENTATION")]


def test_a_node_reporting_bad_implementation_is_reported_at_once_and_errors_after_a_streak(setup):
    bad, raising = setup.node(), setup.node()
    bad.status, raising.status = "BAD_IMPLEMENTATION", "FAILED"
    orchestrator = setup.orchestrator(entry("bad", bad), entry("raising", raising))
    runner = setup.runner(orchestrator, failure_limit=2)
    first = by_model(runner.predict_round(payloads(1)[0], 60, 60))
    assert first["bad"].status == first["raising"].status == PredictionStatus.FAILED
    assert "ZeroDivisionError" in first["raising"].failed_reason
    assert orchestrator.wait_for_failures(1) == [("bad", "BAD_IMPLEMENTATION")]
    runner.predict_round(payloads(2)[1], 60, 60)
    assert orchestrator.wait_for_failures(2) == [("bad", "BAD_IMPLEMENTATION"), ("raising", "MULTIPLE_FAILED")]


def test_a_model_that_raises_fails_with_the_reason_and_a_streak_is_multiple_failed(setup):
    """CrunchDAO's model-runner signals a raising model with a gRPC INTERNAL error."""

    class Raising(_Constant):
        def predict(self, subject: str, horizon: int, step: int) -> dict:
            raise ZeroDivisionError("division by zero in predict")

    node = setup.node(lambda: Raising(0.0))
    orchestrator = setup.orchestrator(entry("raising", node))
    runner = setup.runner(orchestrator, failure_limit=2)
    [outcome] = runner.predict_round(payloads(1)[0], 60, 60)
    assert outcome.status == PredictionStatus.FAILED and "division by zero in predict" in outcome.failed_reason
    runner.predict_round(payloads(2)[1], 60, 60)
    assert orchestrator.wait_for_failures(1) == [("raising", "MULTIPLE_FAILED")]


def test_a_models_state_outlives_the_run_that_set_it_up(setup):
    """Each Dagster run opens its own runner and calls Setup; the node keeps its instance."""
    node = setup.node(_Counter)
    orchestrator = setup.orchestrator(entry("m", node))
    values = []
    for payload in payloads(3):
        runner = setup.runner(orchestrator)
        values.append(runner.predict_round(payload, 60, 60)[0].value)
        runner.close()
    assert values == [1.0, 2.0, 3.0] and node.setups == 1


def test_a_node_that_lost_its_instance_is_set_up_again(setup):
    node = setup.node(_Counter)
    runner = setup.runner(setup.orchestrator(entry("m", node)))
    assert runner.predict_round(payloads(1)[0], 60, 60)[0].value == 1.0
    node.restart()  # the container restarted at the same address
    [outcome] = runner.predict_round(payloads(2)[1], 60, 60)
    assert outcome.status == PredictionStatus.ABSENT and "no instance" in outcome.failed_reason
    assert runner.predict_round(payloads(3)[2], 60, 60)[0].value == 1.0 and node.setups == 2


def test_a_setup_refused_as_bad_implementation_is_reported(setup):
    node = setup.node(class_name="some.OtherBase")  # the submission has no subclass of ours
    orchestrator = setup.orchestrator(entry("m", node))
    runner = setup.runner(orchestrator)
    assert orchestrator.wait_for_failures(1) == [("m", "BAD_IMPLEMENTATION")]
    assert runner.specs == []


def test_a_model_that_disappears_mid_round_is_absent_and_the_others_answer(setup):
    good, leaving = setup.node(), setup.node()
    leaving.hang.set()
    runner = setup.runner(setup.orchestrator(entry("good", good), entry("leaving", leaving)), timeout_seconds=20.0)
    result: list = []
    thread = threading.Thread(target=lambda: result.extend(runner.predict_round(payloads(1)[0], 60, 60)))
    thread.start()
    eventually(lambda: "predict" in leaving.calls)
    leaving.stop()  # the container goes away while its call is in flight
    thread.join(30)
    outcomes = by_model(result)
    assert outcomes["good"].status == PredictionStatus.PENDING
    assert outcomes["leaving"].status == PredictionStatus.ABSENT and "unreachable" in outcomes["leaving"].failed_reason
    later = by_model(runner.predict_round(payloads(2)[1], 60, 60))
    assert later["leaving"].status == PredictionStatus.ABSENT and later["good"].status == PredictionStatus.PENDING


def test_recovering_then_running_again_at_a_new_address(setup):
    node = setup.node()
    orchestrator = setup.orchestrator(entry("m", node))
    runner = setup.runner(orchestrator)
    assert runner.predict_round(payloads(1)[0], 60, 60)[0].status == PredictionStatus.PENDING
    orchestrator.update(entry("m", node, state="RECOVERING"))
    eventually(lambda: runner.statuses == {"m": "recovering"})
    [outcome] = runner.predict_round(payloads(2)[1], 60, 60)
    assert outcome.status == PredictionStatus.ABSENT and "recovering" in outcome.failed_reason
    back = setup.node()
    orchestrator.update(entry("m", back))  # same deployment, restarted elsewhere
    eventually(lambda: runner.statuses == {"m": "healthy"})
    assert runner.predict_round(payloads(3)[2], 60, 60)[0].status == PredictionStatus.PENDING
    assert back.setups == 1 and back.calls == ["tick", "predict"]


def test_a_redeployment_replaces_the_model_and_the_old_one_stopping_changes_nothing(setup):
    old = setup.node(lambda: _Constant(0.1))
    orchestrator = setup.orchestrator(entry("m", old, deployment="d1"))
    runner = setup.runner(orchestrator)
    assert runner.predict_round(payloads(1)[0], 60, 60)[0].value == 0.1
    new = setup.node(lambda: _Constant(0.2))
    orchestrator.update(entry("m", new, deployment="d2"))
    eventually(lambda: [s.entrypoint for s in runner.specs] == ["orchestrator:d2"] and runner.statuses == {"m": "healthy"})
    orchestrator.update(entry("m", old, deployment="d1", state="STOPPED"))
    assert runner.predict_round(payloads(2)[1], 60, 60)[0].value == 0.2
    orchestrator.update(entry("m", new, deployment="d2", state="STOPPED"))
    eventually(lambda: runner.specs == [])


def test_low_performance_reports_from_the_runner_and_on_a_connection_of_its_own(setup):
    weak, weaker = setup.node(), setup.node()
    orchestrator = setup.orchestrator(entry("weak", weak), entry("weaker", weaker))
    runner = setup.runner(orchestrator)
    assert runner.disable(["weak", "unknown"], "score_recent below the operator's floor") == ["weak"]
    assert orchestrator.wait_for_failures(1) == [("weak", "LOW_PERFORMANCE")]
    assert orchestrator.received[0]["data"][0]["failure_reason"] == "score_recent below the operator's floor"
    assert [s.model_id for s in runner.specs] == ["weaker"]
    config = runner.config
    assert report_failures(config, ["weaker", "nope"], FailureCode.LOW_PERFORMANCE, "disabled by rule") == ["weaker"]
    assert orchestrator.wait_for_failures(2)[-1] == ("weaker", "LOW_PERFORMANCE")


def test_timeout_streaks_carry_across_runs(setup, tmp_path):
    """Each Dagster run opens its own runner: the streak file joins their counts."""
    slow = setup.node()
    slow.hang.set()
    orchestrator = setup.orchestrator(entry("slow", slow))
    options = {"timeout_seconds": 0.5, "failure_limit": 2, "streaks_path": str(tmp_path / "streaks.json")}
    first = setup.runner(orchestrator, **options)
    assert first.predict_round(payloads(1)[0], 60, 60)[0].status == PredictionStatus.ABSENT
    first.close()
    second = setup.runner(orchestrator, **options)
    second.predict_round(payloads(2)[1], 60, 60)
    assert orchestrator.wait_for_failures(1) == [("slow", "MULTIPLE_TIMEOUT")]


def test_the_runner_reconnects_and_resynchronises_from_init(setup):
    a, b = setup.node(), setup.node()
    orchestrator = setup.orchestrator(entry("a", a))
    runner = setup.runner(orchestrator)
    orchestrator.drop_clients()
    orchestrator.models["b"] = entry("b", b)  # appears while the node is disconnected
    orchestrator.models.pop("a")
    eventually(lambda: orchestrator.connections == 2 and [s.model_id for s in runner.specs] == ["b"])
    assert runner.predict_round(payloads(1)[0], 60, 60)[0].model_id == "b"


def test_no_orchestrator_is_a_clear_error():
    with pytest.raises(OrchestratorError, match="ws://127.0.0.1:1/synth-test"):
        OrchestratorRunner(OrchestratorConfig("127.0.0.1", 1, CRUNCH, TRACKER_BASE, 1.0, connect_timeout=2.0), InferenceOutput)
    with pytest.raises(OrchestratorError, match="CRUNCH_ID"):
        OrchestratorRunner(OrchestratorConfig("127.0.0.1", 1, "", TRACKER_BASE, 1.0), InferenceOutput)


class _Constant:
    def __init__(self, value: float):
        self.value = value

    def tick(self, data: dict) -> None:
        pass

    def predict(self, subject: str, horizon: int, step: int) -> dict:
        return {"value": self.value}


def test_the_disable_command_reports_low_performance(setup, monkeypatch, tmp_path, capsys):
    from coordinator_dagster.cli.main import main

    node = setup.node()
    orchestrator = setup.orchestrator(entry("weak", node))
    for name, value in {"COORDINATOR_HOME": str(tmp_path), "MODEL_RUNNER": "orchestrator", "CRUNCH_ID": CRUNCH,
                        "MODEL_RUNNER_NODE_HOST": "127.0.0.1", "MODEL_RUNNER_NODE_PORT": str(orchestrator.port)}.items():
        monkeypatch.setenv(name, value)
    assert main(["models", "disable", "weak", "--dry-run"]) == 0 and orchestrator.failures() == []
    assert main(["models", "disable", "weak", "gone", "--reason", "worst decile for a month"]) == 1  # "gone" is not listed
    assert orchestrator.wait_for_failures(1) == [("weak", "LOW_PERFORMANCE")]
    assert orchestrator.received[0]["data"][0]["failure_reason"] == "worst decile for a month"
    out = capsys.readouterr().out
    assert "reported LOW_PERFORMANCE" in out and "gone" in out and "not listed by the orchestrator" in out


class _Counter(_Constant):
    """Counts its rounds: state a model keeps between calls."""

    def __init__(self) -> None:
        super().__init__(0.0)

    def predict(self, subject: str, horizon: int, step: int) -> dict:
        self.value += 1.0
        return {"value": self.value}
