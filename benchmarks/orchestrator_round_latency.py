"""Round latency through CrunchDAO's model orchestrator protocol, on loopback.

    .venv/bin/python benchmarks/orchestrator_round_latency.py [--models 10] [--rounds 200]

Starts `--models` gRPC model nodes (the stand-in of tests/orchestrator_standin.py, each serving
one of the three example trackers through `DynamicSubclassService`) in one child process, as the
orchestrator's containers would be apart from the node, and the stand-in orchestrator's WebSocket
in this process. Then it opens `OrchestratorRunner` (WebSocket `init`, one channel and one `Setup`
per model) and times `--rounds` rounds: each round is `tick` + `predict` on every model at once,
the answers decoded and validated against the contract, as the predictions asset runs it. It
prints the start-up time, the round latency (p50, p95, max, mean) and, for scale, the same rounds
through the in-process runner. Target: p50 under 50 ms for 10 models. The child is stopped before
the script exits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRACKER_BASE = "coordinator_dagster.models.tracker.TrackerBase"


def serve_nodes(count: int) -> None:
    """Child mode: `count` model nodes; prints their ports as one JSON line, runs until stdin closes."""
    from coordinator_dagster.models.examples import ContrarianTracker, MeanReversionTracker, MomentumTracker
    from tests.orchestrator_standin import ModelNode

    classes = [MomentumTracker, MeanReversionTracker, ContrarianTracker]
    nodes = [ModelNode(classes[i % 3], class_name=TRACKER_BASE) for i in range(count)]
    print(json.dumps([node.port for node in nodes]), flush=True)
    sys.stdin.read()
    for node in nodes:
        node.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(name: str, values: list[float]) -> str:
    return (f"{name:<28} p50 {percentile(values, 0.5):7.2f} ms   p95 {percentile(values, 0.95):7.2f} ms   "
            f"max {max(values):7.2f} ms   mean {statistics.fmean(values):7.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--serve-nodes", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_nodes:
        serve_nodes(args.serve_nodes)
        return 0

    from coordinator_dagster.domain_types import InferenceOutput
    from coordinator_dagster.models.orchestrator.config import OrchestratorConfig
    from coordinator_dagster.models.orchestrator.runner import OrchestratorRunner
    from coordinator_dagster.models.runner import InProcessRunner, ModelSpec
    from coordinator_dagster.statuses import PredictionStatus
    from tests.orchestrator_standin import StandInOrchestrator, entry
    from tests.test_orchestrator_runner import payloads

    child = subprocess.Popen([sys.executable, __file__, "--serve-nodes", str(args.models)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    orchestrator = None
    try:
        ports = json.loads(child.stdout.readline())
        models = [entry(f"model-{i:02d}", None, port=port) for i, port in enumerate(ports)]
        orchestrator = StandInOrchestrator("bench", models)
        started = time.perf_counter()
        runner = OrchestratorRunner(OrchestratorConfig("127.0.0.1", orchestrator.port, "bench", TRACKER_BASE, 5.0), InferenceOutput)
        startup = (time.perf_counter() - started) * 1000
        rounds = payloads(args.rounds + 5)
        grpc_ms, statuses = [], set()
        try:
            for i, payload in enumerate(rounds):
                t0 = time.perf_counter()
                outcomes = runner.predict_round(payload, 60, 60)
                if i >= 5:  # the first rounds warm connections and caches
                    grpc_ms.append((time.perf_counter() - t0) * 1000)
                statuses.update(o.status for o in outcomes)
                assert len(outcomes) == args.models
        finally:
            runner.close()
        kinds = ["MomentumTracker", "MeanReversionTracker", "ContrarianTracker"]
        specs = [ModelSpec(f"model-{i:02d}", "", "", i, f"coordinator_dagster.models.examples:{kinds[i % 3]}") for i in range(args.models)]
        local = InProcessRunner(specs, InferenceOutput, 5.0)
        local_ms = []
        try:
            for i, payload in enumerate(rounds):
                t0 = time.perf_counter()
                local.predict_round(payload, 60, 60)
                if i >= 5:
                    local_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            local.close()
    finally:
        if orchestrator is not None:
            orchestrator.close()
        child.stdin.close()
        child.wait(10)

    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{args.models} models on loopback gRPC, {args.rounds} rounds (after 5 warm-up rounds); every answer {', '.join(sorted(statuses))}")
    print(f"start-up (WebSocket init + {args.models} Setup): {startup:.1f} ms")
    print(summary("round through gRPC", grpc_ms))
    print(summary("round in-process (ours)", local_ms))
    target = percentile(grpc_ms, 0.5) < 50
    print(f"target p50 < 50 ms: {'met' if target else 'NOT met'}")
    return 0 if statuses == {PredictionStatus.PENDING} else 1


if __name__ == "__main__":
    raise SystemExit(main())
