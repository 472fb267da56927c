"""What the model workers' sandbox (bubblewrap) costs: per round, per worker start, in memory.

    .venv/bin/python benchmarks/round_latency_benchmark.py --sandbox-cost [--models 10] [--rounds 50]
    .venv/bin/python benchmarks/sandbox_cost.py [--models 10] [--rounds 50] [--starts 10]

Three measurements, each with the sandbox (MODEL_SANDBOX=required) and without it (off):

  round         a real `coordinator models serve` with `--models` example models, `--rounds`
                rounds of POST /predict over one kept-alive connection (as the code location
                calls it), after a warm-up; the time of each request as the client sees it
  worker start  `--starts` workers started one after the other in this process (the runner's
                own `Worker`), from spawn to the model's "ready" frame
  memory        resident (RSS) and proportional (PSS, shared pages split among the processes
                sharing them) memory of one worker: the Python process, and, sandboxed, the two
                bwrap processes around it

With `--shared-runners N` it also starts N sandboxed runners on loopback sharing the manifest
(MODEL_RUNNER_URLS, `client.SharedRound`) and times `--rounds` rounds through the node's client,
one run (open, round, close) per round as the code location does.

Targets (issue 16): the sandbox adds < 10 ms per round of 10 models, < 300 ms per worker start;
200 trivial models across two runners answer a round in < 200 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import secrets
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.model_runner_process import model_runner, payload  # noqa: E402

EXAMPLES = ["MomentumTracker", "MeanReversionTracker", "ContrarianTracker"]
MODES = {"sandboxed": "required", "unsandboxed": "off"}


def write_manifest(path: Path, count: int) -> None:
    entries = [
        {"model_id": f"m{i:03d}", "name": f"m{i}", "cruncher": f"c{i}", "cruncher_index": i, "entrypoint": f"coordinator_dagster.models.examples:{EXAMPLES[i % 3]}"}
        for i in range(count)
    ]
    path.write_text(json.dumps(entries))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> str:
    return f"p50 {percentile(values, 50):7.2f}  p95 {percentile(values, 95):7.2f}  mean {statistics.fmean(values):7.2f}  max {max(values):7.2f}"


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def _descendants(pid: int) -> list[int]:
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def measure_rounds(mode: str, models: int, rounds: int) -> tuple[list[float], dict[str, tuple[int, int]]]:
    """Milliseconds per round, and the memory of the first model's worker processes."""
    with tempfile.TemporaryDirectory(prefix="sandbox-cost-") as tmp:
        manifest = Path(tmp) / "models.json"
        write_manifest(manifest, models)
        with model_runner(Path(tmp), manifest, timeout=5.0, MODEL_SANDBOX=mode) as runner:
            runner.warm_up(timeout=120)
            host, port = runner.url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            body = json.dumps({"session": "live", "inputs": [{"payload": payload(), "horizon_seconds": 60, "step_seconds": 60}]}).encode()
            headers = {"Content-Type": "application/json", **runner.headers}
            times = []
            for _ in range(rounds + 5):
                started = time.perf_counter()
                connection.request("POST", "/predict", body=body, headers=headers)
                answer = json.loads(connection.getresponse().read())
                times.append((time.perf_counter() - started) * 1000.0)
                assert all(o["status"] == "PENDING" for o in answer["results"][0]), answer
            connection.close()
            pid = runner.models()["m000"]["pid"]
            memory = {}
            for process in _descendants(pid):
                name = Path(f"/proc/{process}/comm").read_text().strip()
                memory[f"{name}[{process}]"] = _memory_kb(process)
        return times[5:], memory


def measure_starts(mode: str, starts: int) -> list[float]:
    """Milliseconds from spawning a worker to its model's "ready" frame."""
    from coordinator_dagster.models.runner import EXAMPLE_MODELS
    from coordinator_dagster.models.sandbox import choose_sandbox
    from coordinator_dagster.models.worker_handle import PoolSettings, Worker

    settings = PoolSettings(sandbox=choose_sandbox(mode))
    times = []
    for i in range(starts + 1):
        started = time.perf_counter()
        worker = Worker(EXAMPLE_MODELS[i % 3], settings)
        try:
            worker.wait_ready(time.monotonic() + 60)
            times.append((time.perf_counter() - started) * 1000.0)
        finally:
            worker.kill()
    return times[1:]  # the first start warms the page cache


def measure_shared_rounds(models: int, rounds: int, runners: int) -> tuple[list[float], list[float]]:
    """(ms per round, ms per whole run: open + round + close) through `SharedRound`."""
    from coordinator_dagster.contracts import default_contract
    from coordinator_dagster.models.client import open_round

    token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="shared-runners-") as tmp, contextlib.ExitStack() as stack:
        manifest = Path(tmp) / "models.json"
        write_manifest(manifest, models)
        services = []
        for i in range(runners):
            home = Path(tmp) / f"runner-{i}"
            home.mkdir()
            services.append(stack.enter_context(model_runner(home, manifest, timeout=5.0, token=token, MODEL_SANDBOX="required")))
        url = ",".join(service.url for service in services)
        output_type = default_contract().output_type
        round_ms, run_ms = [], []
        for attempt in range(rounds + 60):
            started = time.perf_counter()
            shared = open_round(url, output_type, replay=False, timeout_seconds=60.0, token=token)
            try:
                round_started = time.perf_counter()
                outcomes = shared.predict_round(payload(), 60, 60)
                ended = time.perf_counter()
            finally:
                shared.close()
            if not all(o.status == "PENDING" for o in outcomes):  # workers still loading after the assignment
                for service in services:
                    service.wait_loaded(120)
                continue
            round_ms.append((ended - round_started) * 1000.0)
            run_ms.append((time.perf_counter() - started) * 1000.0)
            if len(round_ms) == rounds:
                break
        return round_ms, run_ms


def run(models: int, rounds: int, starts: int, shared_runners: int = 0) -> int:
    print(f"Sandbox cost: {models} models, {rounds} rounds, {starts} worker starts; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    rounds_ms, starts_ms, memory = {}, {}, {}
    for label, mode in MODES.items():
        rounds_ms[label], memory[label] = measure_rounds(mode, models, rounds)
        starts_ms[label] = measure_starts(mode, starts)
    for label in MODES:
        print(f"  round ({models} models), {label:<12} ms  {summary(rounds_ms[label])}")
    for label in MODES:
        print(f"  worker start,  {label:<12} ms  {summary(starts_ms[label])}")
    added_round = percentile(rounds_ms["sandboxed"], 50) - percentile(rounds_ms["unsandboxed"], 50)
    added_start = percentile(starts_ms["sandboxed"], 50) - percentile(starts_ms["unsandboxed"], 50)
    print(f"  added by the sandbox (p50): {added_round:+.2f} ms per round (target < 10), {added_start:+.1f} ms per worker start (target < 300)")
    for label in MODES:
        parts = ", ".join(f"{name} RSS {rss / 1024:.1f} MiB PSS {pss / 1024:.1f} MiB" for name, (rss, pss) in memory[label].items())
        total = sum(pss for _, pss in memory[label].values()) / 1024
        print(f"  memory per worker, {label}: {total:.1f} MiB PSS in all ({parts})")
    if shared_runners:
        round_ms, run_ms = measure_shared_rounds(models, rounds, shared_runners)
        print(f"  round ({models} models across {shared_runners} sandboxed runners, SharedRound) ms  {summary(round_ms)}  (target p50 < 200)")
        print(f"  whole run (open + round + close)                           ms  {summary(run_ms)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--shared-runners", type=int, default=0, help="also time rounds across this many runners (MODEL_RUNNER_URLS)")
    args = parser.parse_args(argv)
    return run(args.models, args.rounds, args.starts, args.shared_runners)


if __name__ == "__main__":
    sys.exit(main())
