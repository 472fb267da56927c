"""The orchestrator protocol's pure parts: typed variants, events, the registry's rules, failure
streaks, and the generated message modules matching their .proto files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from coordinator_dagster.models.orchestrator import variants
from coordinator_dagster.models.orchestrator.channel import b58decode
from coordinator_dagster.models.orchestrator.events import EventError, FailureCode, ModelInfo, failure_report, parse_event
from coordinator_dagster.models.orchestrator.protocol import commons_pb2, dynamic_subclass_pb2
from coordinator_dagster.models.orchestrator.protocol.commons_pb2 import Variant, VariantType
from coordinator_dagster.models.orchestrator.registry import Registry
from coordinator_dagster.models.orchestrator.config import cruncher_indexes
from coordinator_dagster.models.orchestrator.runner import call_plan
from coordinator_dagster.models.orchestrator.streaks import Miss, Streaks

PROTOCOL = Path(__file__).resolve().parents[1] / "coordinator_dagster" / "models" / "orchestrator" / "protocol"


def test_variants_use_the_protocols_encodings():
    assert variants.encode(1.5) == Variant(type=VariantType.DOUBLE, value=struct.pack("<d", 1.5))
    assert variants.encode(-2).value == (-2).to_bytes(8, "little", signed=True)
    assert variants.encode("BTC") == Variant(type=VariantType.STRING, value=b"BTC")
    assert variants.encode({"value": 0.25}).type == VariantType.JSON
    assert variants.encode(True) == Variant(type=VariantType.JSON, value=b"true")
    assert variants.encode(None) == Variant(type=VariantType.NONE, value=b"")
    for value in (1.5, -2, "BTC", {"value": 0.25, "extra": [1, 2]}, None):
        assert variants.decode(variants.encode(value)) == value
    args = variants.arguments("BTC", 60, 60)
    assert [a.position for a in args] == [0, 1, 2] and variants.decode(args[2].data) == 60


def test_variants_that_do_not_fit_their_type_are_refused():
    with pytest.raises(ValueError, match="DOUBLE variant of 3 bytes"):
        variants.decode(Variant(type=VariantType.DOUBLE, value=b"abc"))
    with pytest.raises(ValueError, match="PARQUET is not supported"):
        variants.decode(Variant(type=VariantType.PARQUET, value=b"PAR1"))
    with pytest.raises(ValueError):
        variants.decode(Variant(type=VariantType.JSON, value=b"{not json"))
    with pytest.raises(TypeError):
        variants.encode(object())


def _entry(model_id: str, deployment: str, state: str, port: int = 5000) -> dict:
    return {"deployment_id": deployment, "model_id": model_id, "state": state, "ip": "10.0.0.1", "port": port,
            "infos": {"model_name": f"{model_id}-name", "cruncher_id": "c1", "cruncher_name": "alice", "cruncher_wallet_pubkey": "W1", "cruncher_hotkey": "h"}}


def test_events_parse_into_model_infos_and_reports_name_model_code_and_address():
    event, infos = parse_event(json.dumps({"event": "init", "data": [_entry("m1", "d1", "RUNNING")]}))
    assert event == "init"
    assert infos == [ModelInfo("d1", "m1", "RUNNING", "10.0.0.1", 5000, "m1-name", "c1", "alice", "W1", "h")]
    report = json.loads(failure_report(infos[0], FailureCode.MULTIPLE_TIMEOUT, "3 rounds"))
    assert report == {"event": "report_failure", "data": [{"model_id": "m1", "failure_code": "MULTIPLE_TIMEOUT", "failure_reason": "3 rounds", "ip": "10.0.0.1"}]}
    for bad in ("nope", "[]", json.dumps({"event": "update", "data": [{"model_id": "m"}]})):
        with pytest.raises(EventError):
            parse_event(bad)


def _apply(registry: Registry, event: str, *entries: dict) -> tuple[list[str], list[str]]:
    changes = registry.apply(event, [parse_event(json.dumps({"event": event, "data": [e]}))[1][0] for e in entries])
    return [f"{i.model_id}@{i.deployment_id}" for i in changes.connect], [f"{i.model_id}@{i.deployment_id}" for i in changes.disconnect]


def test_registry_follows_running_recovering_stopped():
    registry = Registry()
    assert _apply(registry, "init", _entry("a", "d1", "RUNNING"), _entry("b", "d2", "RUNNING")) == (["a@d1", "b@d2"], [])
    # Same deployment, same address: infos refreshed, no reconnect.
    assert _apply(registry, "update", _entry("a", "d1", "RUNNING")) == ([], [])
    assert _apply(registry, "update", _entry("a", "d1", "RECOVERING")) == ([], ["a@d1"])
    assert registry.models["a"].state == "RECOVERING"
    # Back, at a new address.
    assert _apply(registry, "update", _entry("a", "d1", "RUNNING", port=5001)) == (["a@d1"], [])
    assert _apply(registry, "update", _entry("b", "d2", "STOPPED")) == ([], ["b@d2"])
    assert set(registry.models) == {"a"}


def test_a_redeployment_replaces_the_model_and_the_old_deployments_stop_is_stale():
    registry = Registry()
    _apply(registry, "init", _entry("a", "d1", "RUNNING"))
    assert _apply(registry, "update", _entry("a", "d9", "RUNNING", port=6000)) == (["a@d9"], ["a@d1"])
    assert _apply(registry, "update", _entry("a", "d1", "STOPPED")) == ([], [])
    assert _apply(registry, "update", _entry("a", "d1", "RECOVERING")) == ([], [])
    assert registry.models["a"].deployment_id == "d9"


def test_init_is_the_whole_truth():
    registry = Registry()
    _apply(registry, "init", _entry("a", "d1", "RUNNING"), _entry("b", "d2", "RUNNING"))
    assert _apply(registry, "init", _entry("b", "d2", "RUNNING")) == ([], ["a@d1"])
    assert set(registry.models) == {"b"}
    assert registry.apply("something-else", []).connect == []


def test_streaks_report_once_at_the_limit_and_reset_on_an_answer(tmp_path):
    streaks = Streaks(3, tmp_path / "s.json")
    assert streaks.missed("d1", Miss.TIMEOUT) is None
    assert streaks.missed("d1", Miss.TIMEOUT) is None
    streaks.answered("d1")  # an answer breaks the streak
    assert [streaks.missed("d1", Miss.TIMEOUT) for _ in range(3)] == [None, None, FailureCode.MULTIPLE_TIMEOUT]
    assert streaks.missed("d1", Miss.TIMEOUT) is None  # reported once; counting starts again
    assert [streaks.missed("d2", Miss.INVALID) for _ in range(3)][-1] == FailureCode.BAD_IMPLEMENTATION
    assert [streaks.missed("d3", Miss.FAILED) for _ in range(3)][-1] == FailureCode.MULTIPLE_FAILED
    # Each Dagster run is a process: the streaks outlive the object through the file.
    streaks.missed("d4", Miss.TIMEOUT)
    streaks.save()
    again = Streaks(2, tmp_path / "s.json")
    assert again.missed("d4", Miss.TIMEOUT) == FailureCode.MULTIPLE_TIMEOUT
    (tmp_path / "bad.json").write_text("{not json")
    assert Streaks(2, tmp_path / "bad.json").counts == {}


def test_call_plan_follows_the_models_interface():
    payload = {"subject": "BTC", "round_ts": "2026-01-01T00:01:00+00:00", "step_seconds": 60, "horizon_seconds": 60,
               "candles": [{"ts": "2026-01-01T00:00:00+00:00", "close": 100.0}]}
    ours = call_plan("coordinator_dagster.models.tracker.TrackerBase", payload, 60, 60, "candle")
    assert ours == [("tick", [payload]), ("predict", ["BTC", 60, 60])]
    reference = call_plan("cruncher.ModelBaseClass", payload, 300, 60, "candle")
    assert reference[0][0] == "feed_update" and reference[0][1][0]["candles_1m"][0]["close"] == 100.0
    assert reference[1] == ("predict", ["BTC", 300, 60])


def test_cruncher_indexes_file():
    assert cruncher_indexes('{"W1": 4, "cid-2": 0}') == {"W1": 4, "cid-2": 0}
    for bad in ('[1]', '{"W1": -1}', '{"W1": true}', '{"W1": "3"}'):
        with pytest.raises(ValueError):
            cruncher_indexes(bad)


def test_base58_decoding():
    assert b58decode("1") == b"\0" and b58decode("2g") == b"a" and b58decode("11") == b"\0\0"
    with pytest.raises(ValueError):
        b58decode("0OIl")


def test_generated_modules_match_the_proto_files(tmp_path):
    import grpc_tools
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    out = tmp_path / "set.desc"
    assert protoc.main(["protoc", f"-I{PROTOCOL}", f"-I{include}", f"--descriptor_set_out={out}",
                        str(PROTOCOL / "commons.proto"), str(PROTOCOL / "dynamic_subclass.proto")]) == 0
    compiled = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file}
    for compiled_file in compiled.values():
        for message in compiled_file.message_type:
            for field in message.field:
                field.ClearField("json_name")  # a descriptor set carries it; generated modules do not
    for module in (commons_pb2, dynamic_subclass_pb2):
        generated = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        assert generated == compiled[module.DESCRIPTOR.name], module.__name__
    service = dynamic_subclass_pb2.DESCRIPTOR.services_by_name["DynamicSubclassService"]
    assert [m.name for m in service.methods] == ["Setup", "Call", "Rest"]


def test_weak_models_rule_reads_the_leaderboard():
    import polars as pl

    from coordinator_dagster.models.orchestrator.rules import weak_models

    board = pl.DataFrame({
        "model_id": ["a", "b", "c", "d", "ens"], "is_ensemble": [False, False, False, False, True],
        "score_recent": [0.5, -0.2, -0.9, -0.5, -3.0], "prediction_count": [100, 100, 100, 3, 100],
    })
    # d is weak but has too few predictions to judge; the ensemble is the node's own.
    assert weak_models(board, "score_recent", 0.0, min_predictions=10) == ["c", "b"]
    assert weak_models(board, "score_recent", -0.6) == ["c"]
    with pytest.raises(ValueError, match="no column 'score_steady'"):
        weak_models(board, "score_steady", 0.0)
