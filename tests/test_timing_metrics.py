"""Per-round stage timing: the summary's numbers on a worked example, and `GET /timing-metrics`
served under uvicorn from the engine's timing file."""

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from coordinator_dagster.engine.timing import append_timing, recent_timings, stage_metadata, timing_metrics
from tests.api_fixtures import serve


def record(n: int, landed: int, model: int) -> dict:
    # Round at 0; each stage's end in µs after it. Stages: feed 1000 + landed, detection 10,
    # input build 200, model calls `model`, write 300, report 5000.
    base = 1000 + landed
    stamps = {"round": f"r{n}", "round_us": 0, "landed_us": base, "seen_us": base + 10, "inputs_us": base + 210}
    stamps["models_us"] = stamps["inputs_us"] + model
    stamps["persisted_us"] = stamps["models_us"] + 300
    stamps["reported_us"] = stamps["persisted_us"] + 5000
    return stamps


def test_stage_latencies_on_a_worked_example():
    records = [record(1, 0, 100), record(2, 0, 500), record(3, 0, 900)]
    body = timing_metrics(records)
    stages = {s["name"]: s for s in body["stage_latencies"]}
    assert [s["name"] for s in body["stage_latencies"]] == [
        "feed_delay", "detection", "input_build", "model_calls", "write", "report", "end_to_end"]
    calls = stages["model_calls"]
    assert (calls["count"], calls["mean_us"], calls["median_us"], calls["min_us"], calls["max_us"]) == (3, 500, 500, 100, 900)
    # statistics.quantiles (exclusive) on 100, 500, 900: p95 and p99 extrapolate past the max.
    assert calls["p95_us"] == pytest.approx(900 + 0.8 * 400) and calls["p99_us"] == pytest.approx(900 + 0.96 * 400)
    # End to end is landed -> persisted: detection 10 + inputs 200 + model + write 300 = 1010 mean.
    total = stages["end_to_end"]
    assert (total["step"], total["count"], total["mean_us"], total["pct_of_total"]) == ("total", 3, 1010, 100.0)
    assert calls["pct_of_total"] == round(500 / 1010 * 100, 1)
    assert stages["report"]["mean_us"] == 5000  # after persistence: not part of end to end
    assert body["total_records"] == 3 and body["recent_samples"] == records
    assert stage_metadata(records[0])["end_to_end_ms"] == 0.61


def test_an_empty_summary_has_every_stage_with_no_count():
    body = timing_metrics([])
    assert body["total_records"] == 0 and all(s["count"] == 0 and s["mean_us"] is None for s in body["stage_latencies"])


def test_the_timing_file_keeps_the_newest_rounds_and_skips_a_torn_line(tmp_path):
    for n in range(5):
        append_timing(tmp_path, record(n, 0, 100))
    with open(tmp_path / "timings.jsonl", "a") as handle:
        handle.write('{"round": "cut sh')
    assert [r["round"] for r in recent_timings(tmp_path, limit=3)] == ["r3", "r4"]


@pytest.mark.process
def test_timing_metrics_route(tmp_path):
    home = tmp_path / "home"
    for n, model in enumerate((100, 500, 900)):
        append_timing(home / "engine", record(n, 0, model))
    with serve(create_app(ApiSettings(home=home))) as base, httpx.Client(base_url=base, timeout=60) as client:
        body = client.get("/timing-metrics").json()
        stages = {s["name"]: s for s in body["stage_latencies"]}
        assert stages["model_calls"]["median_us"] == 500 and stages["end_to_end"]["count"] == 3
        assert [s["round"] for s in client.get("/timing-metrics", params={"limit": 2}).json()["recent_samples"]] == ["r1", "r2"]
        assert client.get("/timing-metrics", params={"limit": 0}).status_code == 422
