"""Participant models written for the reference engine run unmodified, in process and in the
sandboxed runner service, next to our own trackers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from coordinator_dagster.domain_types import InferenceOutput
from coordinator_dagster.models.manifest import ManifestError, load_manifest
from coordinator_dagster.models.reference_models import ReferenceModel, derives_from, load_model, reference_feed
from coordinator_dagster.models.runner import InProcessRunner, ModelSpec
from tests.model_runner_process import model_runner, payload

PACK = Path(__file__).parent / "reference_pack"
MOMENTUM = "coordinator_dagster.models.examples:MomentumTracker"
CLOSES = (100.0, 101.0, 103.5)
T0 = 1_795_168_800  # 2026-11-20T10:00:00Z


@pytest.fixture
def pack(monkeypatch):
    monkeypatch.syspath_prepend(str(PACK))


def test_the_candle_and_tick_shapes():
    data = payload(closes=(1.0, 2.0))
    assert reference_feed(data) == {
        "symbol": "BTC",
        "asof_ts": T0 + 60,
        "candles_1m": [
            {"ts": T0, "open": None, "high": None, "low": None, "close": 1.0, "volume": None},
            {"ts": T0 + 60, "open": None, "high": None, "low": None, "close": 2.0, "volume": None},
        ],
    }
    assert reference_feed(data, "tick") == {"symbol": "BTC", "asof_ts": T0 + 60, "ticks": [{"ts": T0, "price": 1.0}, {"ts": T0 + 60, "price": 2.0}]}
    full = payload(closes=(5.0,))
    full["candles"][0].update(open=4.0, high=6.0, low=3.0, volume=12.5)
    assert reference_feed(full)["candles_1m"][0] == {"ts": T0, "open": 4.0, "high": 6.0, "low": 3.0, "close": 5.0, "volume": 12.5}
    assert reference_feed(payload(closes=()))["asof_ts"] == 0


def test_the_base_class_is_found_by_name(pack):
    from refcomp.examples.drift import Drift

    assert derives_from(Drift, "cruncher.ModelBaseClass")
    assert derives_from(Drift, "refcomp.cruncher.ModelBaseClass")
    assert not derives_from(Drift, "other.ModelBaseClass")
    assert isinstance(load_model("refcomp.examples.drift:Drift"), ReferenceModel)
    # Under another base name the class is taken as one of ours, and has no `tick`.
    assert not isinstance(load_model("refcomp.examples.drift:Drift", "mine.Base"), ReferenceModel)
    assert isinstance(load_model("refcomp.examples.drift:*"), ReferenceModel)
    with pytest.raises(ImportError, match="found none"):
        load_model("refcomp.cruncher:*")


def _check(outcomes: dict) -> None:
    drift = outcomes["drift"]
    assert drift["status"] == "PENDING" and drift["value"] == pytest.approx(3.5)
    output = json.loads(drift["output"])
    assert output["asof"] == T0 + 120 and output["count"] == 3
    assert output["keys"] == ["close", "high", "low", "open", "ts", "volume"]
    assert output["call"] == ["BTC", 60, 60]  # predict(subject, resolve_horizon_seconds, step_seconds)
    assert outcomes["momentum"]["status"] == "PENDING"  # our own tracker, in the same round


def test_in_process_next_to_our_trackers(pack):
    specs = [ModelSpec("drift", "Drift", "dora", 0, "refcomp.examples.drift:Drift"), ModelSpec("momentum", "Momentum", "alice", 1, MOMENTUM)]
    runner = InProcessRunner(specs, InferenceOutput, timeout_seconds=5)
    try:
        outcomes = runner.predict_round(payload(closes=CLOSES), 60, 60)
    finally:
        runner.close()
    _check({o.model_id: o.__dict__ for o in outcomes})


def _submissions(root: Path) -> Path:
    """The reference's layout: a model list beside submissions/<id>/{main.py, cruncher.py}."""
    folder = root / "submissions" / "drift-tracker"
    folder.mkdir(parents=True)
    shutil.copy(PACK / "refcomp" / "cruncher.py", folder / "cruncher.py")
    (folder / "main.py").write_text((PACK / "refcomp" / "examples" / "drift.py").read_text().replace("from refcomp.cruncher", "from cruncher"))
    models = root / "models.dev.yml"
    models.write_text(
        "models:\n"
        "  - id: drift\n    submission_id: drift-tracker\n    model_name: drift\n    cruncher_name: dora\n    desired_state: RUNNING\n"
        "  - id: paused\n    submission_id: drift-tracker\n    model_name: paused\n    cruncher_name: eve\n    desired_state: STOPPED\n"
    )
    return models


def test_the_reference_model_list_is_a_manifest(tmp_path):
    models = _submissions(tmp_path)
    [spec] = load_manifest(models)
    assert (spec.model_id, spec.name, spec.cruncher, spec.cruncher_index) == ("drift", "drift", "dora", 0)
    assert spec.entrypoint == "main:*" and spec.path == str(tmp_path / "submissions" / "drift-tracker")
    bad = tmp_path / "bad.yml"
    bad.write_text("models:\n  - id: x\n    model_name: x\n")
    with pytest.raises(ManifestError, match=r"entry 0: missing keys \['cruncher_name', 'submission_id'\]"):
        load_manifest(bad)


@pytest.mark.process
def test_in_the_sandboxed_runner_service(tmp_path):
    models = _submissions(tmp_path)
    # The runner's model list: the reference's file plus one of our trackers, as JSON.
    [drift] = load_manifest(models)
    manifest = tmp_path / "models.json"
    manifest.write_text(json.dumps([
        {"model_id": "drift", "name": "Drift", "cruncher": "dora", "cruncher_index": 0, "entrypoint": drift.entrypoint, "path": drift.path},
        {"model_id": "momentum", "name": "Momentum", "cruncher": "alice", "cruncher_index": 1, "entrypoint": MOMENTUM},
    ]))
    with model_runner(tmp_path, manifest, timeout=5.0) as runner:
        runner.warm_up()
        [outcomes] = runner.predict(payload(closes=CLOSES))
    _check(outcomes)
