#!/usr/bin/env python3
"""Time `coordinator demo` end to end: wall time per run, median, and the child's peak RSS.

    make bench                                   # 3 runs of the 2-day demo
    .venv/bin/python benchmarks/demo_benchmark.py --runs 5 --days 1

Each run is a fresh process (`coordinator demo`, so Python start-up and `import dagster` are
counted) writing into a new temporary COORDINATOR_HOME, with DAGSTER_HOME unset (ephemeral
instance, as the demo's default). Peak RSS is the child's own ru_maxrss from wait4(), so each run
is measured separately. Not a test: it asserts nothing beyond the demo exiting 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FINISHED = re.compile(r"Demo finished in ([0-9.]+) s")


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores ({cpu or platform.machine()}){mem}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def run_once(command: list[str], home: Path, env: dict[str, str], log: Path) -> tuple[float, int, float | None, int]:
    """(wall seconds, peak RSS in bytes, the demo's own reported seconds, exit status)."""
    began = time.perf_counter()
    with open(log, "wb") as out:
        child = subprocess.Popen([*command, "--home", str(home)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    match = FINISHED.search(log.read_text(errors="replace"))
    return wall, usage.ru_maxrss * 1024, float(match.group(1)) if match else None, child.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time `coordinator demo` runs (wall time, peak RSS).")
    parser.add_argument("--runs", type=int, default=3, help="number of runs (default 3)")
    parser.add_argument("--days", type=int, default=2, help="demo days (default 2, the demo's default)")
    parser.add_argument("--seed", type=int, default=None, help="synthetic seed (default: the demo's)")
    parser.add_argument("--coordinator", default=str(ROOT / ".venv" / "bin" / "coordinator"), help="the coordinator executable")
    parser.add_argument("--keep", action="store_true", help="keep each run's temporary COORDINATOR_HOME and log")
    args = parser.parse_args(argv)

    if not Path(args.coordinator).exists():
        print(f"demo_benchmark: {args.coordinator} not found; run `make install` first", file=sys.stderr)
        return 2
    command = [args.coordinator, "demo", "--days", str(args.days)]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "COORDINATOR_HOME")}

    print(f"machine: {machine()}")
    print(f"command: {' '.join(command)} --home <tmp>  x {args.runs}")
    walls: list[float] = []
    peaks: list[int] = []
    for i in range(1, args.runs + 1):
        tmp = Path(tempfile.mkdtemp(prefix="coordinator-bench-"))
        home, log = tmp / "home", tmp / "demo.log"
        try:
            wall, peak, inside, code = run_once(command, home, env, log)
            if code != 0:
                print(f"run {i}: FAILED (exit {code}); last lines of {log}:", file=sys.stderr)
                print("\n".join(log.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
                args.keep = True
                return 1
            lake_mb = sum(f.stat().st_size for f in (home / "lake").rglob("*.parquet")) / 1e6 if (home / "lake").exists() else 0.0
            walls.append(wall)
            peaks.append(peak)
            inside_text = f"{inside:.1f} s" if inside is not None else "n/a"
            print(f"run {i}: wall {wall:6.1f} s   demo's own timer {inside_text:>8}   peak RSS {peak / 2**20:6.0f} MiB   lake {lake_mb:.1f} MB", flush=True)
        finally:
            if args.keep:
                print(f"       kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"median wall {statistics.median(walls):.1f} s (min {min(walls):.1f}, max {max(walls):.1f}) over {len(walls)} runs; "
        f"peak RSS max {max(peaks) / 2**20:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
