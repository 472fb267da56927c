"""Sequential latency of the report API, served by its own uvicorn process over a seeded lake.

Usage: .venv/bin/python benchmarks/api_benchmark.py [--home DIR] [--requests N] [--hours H]
Seeds ~50k predictions (139 hourly partitions × 60 rounds × 2 scopes × 3 models) through the
lake's own writers, starts `uvicorn api.app:create_app`, and prints p50 / p99 / max per route.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordinator_dagster.partitions import window_start  # noqa: E402
from tests.api_fixtures import seed_lake  # noqa: E402


def reset_signals() -> None:
    # Background processes here inherit SIGINT/SIGTERM as ignored; restore them for the server.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "coordinator-api-bench")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--hours", type=int, default=139)
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()

    shutil.rmtree(args.home, ignore_errors=True)
    seeded = seed_lake(args.home, hours=args.hours, every_minutes=1)
    print(f"lake {args.home}: {seeded.predictions.height} predictions in {len(seeded.window_keys)} hourly partitions")
    middle = len(seeded.window_keys) // 2
    two_hours = {
        "start": window_start(seeded.window_keys[middle]).isoformat(),
        "end": window_start(seeded.window_keys[middle + 2]).isoformat(),
    }

    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--port", str(args.port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
        env={**os.environ, "COORDINATOR_HOME": str(args.home)},
        preexec_fn=reset_signals,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=30) as http:
            for name, path, params in [
                ("leaderboard", "/reports/leaderboard", {}),
                ("predictions limit=100", "/reports/predictions", {"limit": 100}),
                ("predictions limit=100, 2-hour range", "/reports/predictions", {"limit": 100, **two_hours}),
                ("healthz", "/healthz", {}),
            ]:
                for _ in range(5):
                    http.get(path, params=params)  # warm-up
                times, bad = [], 0
                for _ in range(args.requests):
                    started = time.perf_counter()
                    response = http.get(path, params=params)
                    times.append((time.perf_counter() - started) * 1000)
                    bad += response.status_code != 200
                times.sort()
                p99 = times[max(0, int(0.99 * len(times)) - 1)]
                print(f"{name:40s} n={args.requests} p50={statistics.median(times):6.1f} ms  p99={p99:6.1f} ms  max={times[-1]:6.1f} ms  non-200={bad}")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


if __name__ == "__main__":
    main()
