"""`make run` as a newcomer sees it: how long until the Dagster UI, the report API and the model
runner answer, and what the terminal shows while the node runs.

    .venv/bin/python benchmarks/run_startup_benchmark.py [--seconds 150] [--check]

Starts scripts/run.sh (what `make run` runs, bootstrap skipped) on free ports with a new
temporary COORDINATOR_HOME and DAGSTER_HOME, timestamps every terminal line, keeps the node
running `--seconds` after the UI is ready (a few one-minute rounds: feed, predict and score runs),
then stops it with SIGTERM. Prints the seconds from start to each "ready" line, the number of
terminal lines, how many of them are DEBUG run-log lines or Python warnings (BetaWarning,
SupersessionWarning, ...), the size of the log files those go to instead, and each asset's
materialized partitions out of its partitions as the UI counts them; the terminal's
lines are kept in HOME/terminal.log with `--keep-home`. `--check` exits 1
when the terminal showed any DEBUG line or warning, or a service never became ready.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from round_latency_benchmark import LAUNCH, RUN_SH, free_port, stop_group  # noqa: E402

READY = re.compile(r"coordinator: (?P<label>.+?) ready at ")
DEBUG = re.compile(r" - DEBUG - ")
WARNING = re.compile(r"\b\w*Warning\b: ")


def asset_health(home: Path) -> list[str]:
    """`asset materialized/partitions` for each asset, as the Dagster UI would count them, from
    the node's instance and its definitions (with the partitions start the home remembers)."""
    import dagster as dg

    from coordinator_dagster import known_warnings

    known_warnings.accept()
    from coordinator_dagster.definitions import build_defs
    from coordinator_dagster.settings import load_settings

    defs = build_defs(settings=load_settings({"COORDINATOR_HOME": str(home)}))
    out = []
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        for spec in defs.resolve_all_asset_specs():
            if spec.partitions_def is None:
                done = instance.get_latest_materialization_event(spec.key) is not None
                out.append(f"{spec.key.to_user_string()} {'materialized' if done else 'never materialized'}")
                continue
            keys = spec.partitions_def.get_partition_keys()
            materialized = instance.get_materialized_partitions(spec.key) & set(keys)
            out.append(f"{spec.key.to_user_string()} {len(materialized)}/{len(keys)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="how long to keep the node running once the UI is ready")
    parser.add_argument("--timeout", type=float, default=240.0, help="give up if the UI is not ready after this many seconds")
    parser.add_argument("--check", action="store_true", help="exit 1 if the terminal showed DEBUG lines or warnings")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary COORDINATOR_HOME (its path is printed)")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="run-startup-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MODEL_RUNNER_URL", "PYTHONWARNINGS")}
    env.update({"COORDINATOR_HOME": str(home), "RUN_SKIP_BOOTSTRAP": "1", "PYTHONUNBUFFERED": "1"})
    env.update({name: str(free_port()) for name in ("DAGSTER_PORT", "API_PORT", "MODEL_RUNNER_PORT")})
    print(f"home {home}; cores {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}", flush=True)

    lines: list[tuple[float, str]] = []
    began = time.monotonic()
    node = subprocess.Popen([sys.executable, str(LAUNCH), "bash", str(RUN_SH)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def read() -> None:
        assert node.stdout is not None
        for line in node.stdout:
            lines.append((time.monotonic() - began, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ready: dict[str, float] = {}
    try:
        deadline = time.monotonic() + args.timeout
        while "Dagster UI" not in ready and time.monotonic() < deadline and node.poll() is None:
            ready.update({m["label"]: t for t, text in list(lines) if (m := READY.search(text))})
            time.sleep(0.2)
        if "Dagster UI" in ready:
            time.sleep(args.seconds)
    finally:
        stop_group(node, signal.SIGTERM, 60)
        reader.join(timeout=10)
    ready.update({m["label"]: t for t, text in lines if (m := READY.search(text))})

    (home / "terminal.log").write_text("".join(f"{t:7.1f} {text}\n" for t, text in lines), encoding="utf-8")
    debug = [text for _, text in lines if DEBUG.search(text)]
    warnings = [text for _, text in lines if WARNING.search(text)]
    for label in ("Dagster UI", "report API", "model runner"):
        shown = f"{ready[label]:.1f} s" if label in ready else "never"
        print(f"{label:<13} ready after {shown}")
    logs = sorted((home / "logs").glob("*.log")) if (home / "logs").is_dir() else []
    print(f"terminal: {len(lines)} lines over {lines[-1][0] if lines else 0:.0f} s; {len(debug)} DEBUG lines; {len(warnings)} warning lines")
    print("log files: " + ", ".join(f"{p.name} {p.stat().st_size / 1e3:.0f} kB" for p in logs))
    for text in sorted({WARNING.search(t)[0] + t.split("Warning: ", 1)[1][:60] for t in warnings}) + debug[:3]:
        print(f"  e.g. {text[:160]}")
    if (home / "dagster_home").is_dir():
        print("asset health: " + ", ".join(asset_health(home)))
    if args.keep_home:
        print(f"kept {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    failed = bool(debug or warnings) or {"Dagster UI", "report API", "model runner"} - set(ready)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
