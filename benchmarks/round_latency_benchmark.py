"""Round latency of the embedded node: from a round's feed data landing to its predictions persisted.

    .venv/bin/python benchmarks/round_latency_benchmark.py [--rounds 30] [--models 10]
        [--path engine|runs|both] [--feed listen|poll] [--storage sqlite|postgres|both] [--keep-home]

`--path engine` measures the round engine (in the listener's process, as `make run` starts it)
and prints its own stage timings (feed delay, detection, input build, model calls, write, report,
end to end; <home>/engine/timings.jsonl); `--path runs` starts the listener with
`--no-round-engine`, so the predict sensor launches a Dagster run per round (the old path, with
the run-record breakdown below); `--path both` (the default) measures one after the other. Times
are the lake files' modification times (a write in place), not the watcher's poll.

Starts the node exactly as `make run` does (scripts/run.sh: `dagster dev` with webserver and
daemon, the report API, and the model runner service) on free ports, with a temporary
COORDINATOR_HOME and DAGSTER_HOME and a manifest of `--models` models (the three example models
under numbered ids), one-minute rounds, the synthetic feed. It watches the lake (every 0.1 s)
for:

  landed     the candle that closes round R (open time R - 1 min) present for every subject
  persisted  all of round R's prediction rows (models x subjects) present

and, after the last round, reads the Dagster instance's run records and event log of each
round's predict run (run key `predict:<R>`) to split landed -> persisted into:

  sensor wait   landed -> the sensor created the run
  run launch    run created -> RUN_START (a new process importing Dagster and the code)
  inputs step   RUN_START -> the `predictions` step starts (the `inputs` step runs before it)
  model calls   the asset's own timing of its calls to the runner (run metadata)
  write         the asset's own timing of its lake writes (run metadata)
  rest          what is left (step bookkeeping, catalog refresh) until the rows were seen

It also prints the feed delay (round time -> landed). `--feed listen` (the default, as `make
run`) has run.sh start the streaming listener (`coordinator feeds listen`, FEED_LIVE=1), which
writes each candle as it closes; `--feed poll` (FEED_LIVE=0) leaves it to the minute ingest
schedule, as before the listener existed:

    .venv/bin/python benchmarks/round_latency_benchmark.py --feed poll

`--storage` chooses the Dagster instance's storage: `sqlite` (the default, as `make run`),
`postgres` (a throwaway PostgreSQL server from the machine's binaries, tests/postgres_server.py,
handed to run.sh as DAGSTER_PG_URL) or `both` (one measurement after the other, then the two
summaries side by side):

    .venv/bin/python benchmarks/round_latency_benchmark.py --storage both --rounds 10

Every process the script starts is stopped before it exits, also on Ctrl-C or SIGTERM.

`--sandbox-cost` measures instead what the model workers' sandbox costs (per round of `--models`
models, per worker start, memory per worker; benchmarks/sandbox_cost.py), against the runner
service alone, with and without the sandbox:

    .venv/bin/python benchmarks/round_latency_benchmark.py --sandbox-cost --models 10 --rounds 50

`--one-second` runs one-second rounds instead (tick feed at 1 s, a prediction every second and one
every 5 s per subject, micro-batch scoring in the engine) for `--minutes` minutes and prints
missed rounds, stage latencies, the node's CPU and memory, scoring lag and the API's reads
(benchmarks/one_second_benchmark.py):

    .venv/bin/python benchmarks/round_latency_benchmark.py --one-second --minutes 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from coordinator_dagster.lake.layout import DATA_FILE, window_folder  # noqa: E402
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG, parse_round_stamp  # noqa: E402
from coordinator_dagster.partitions import window_key, window_start  # noqa: E402

LAUNCH = ROOT / "scripts" / "launch.py"
RUN_SH = ROOT / "scripts" / "run.sh"
EXAMPLES = [
    ("momentum", "coordinator_dagster.models.examples:MomentumTracker"),
    ("mean-reversion", "coordinator_dagster.models.examples:MeanReversionTracker"),
    ("contrarian", "coordinator_dagster.models.examples:ContrarianTracker"),
]
SUBJECTS = ["BTC", "ETH"]
STEP = dt.timedelta(minutes=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_manifest(path: Path, count: int) -> None:
    entries = []
    for i in range(count):
        base, entrypoint = EXAMPLES[i % len(EXAMPLES)]
        entries.append({"model_id": f"{base}-{i + 1:02d}", "name": f"{base} #{i + 1}", "cruncher": f"cruncher-{i + 1:02d}", "cruncher_index": i, "entrypoint": entrypoint})
    path.write_text(json.dumps(entries, indent=1))


def stop_group(proc: subprocess.Popen, sig: int, seconds: float) -> None:
    """Signal the process group of `proc` (started via launch.py), then SIGKILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class LakeWatch:
    """Polls the lake's hour partitions; notes when each round's feed data and predictions appear."""

    def __init__(self, home: Path, expected_rows: int):
        self.lake = home / "lake"
        self.expected_rows = expected_rows
        self.landed: dict[dt.datetime, float] = {}
        self.persisted: dict[dt.datetime, float] = {}
        self.missed: set[dt.datetime] = set()
        self.preexisting: set[dt.datetime] = set()
        self.latency_ms: dict[dt.datetime, list[float]] = {}
        self.statuses: dict[str, int] = {}
        self._mtimes: dict[Path, int] = {}

    def _file(self, table: str, key: str) -> Path:
        return self.lake / table / window_folder(window_start(key)) / DATA_FILE

    def _changed(self, path: Path) -> float | None:
        """The file's modification time (s) if it changed since the last poll: when a write was
        in place, whatever the poll's own period."""
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        if self._mtimes.get(path) == mtime:
            return None
        self._mtimes[path] = mtime
        return mtime / 1e9

    def poll(self, initial: bool = False) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        keys = {window_key(now), window_key(now - dt.timedelta(minutes=2))}
        for key in sorted(keys):
            feed = self._file("feed_records", key)
            seen_at = self._changed(feed)
            if seen_at is not None:
                with open(feed, "rb") as handle:  # one handle: the file may be replaced mid-read
                    frame = pl.read_parquet(handle, columns=["subject", "ts_event"])
                per_subject = [set(frame.filter(pl.col("subject") == s)["ts_event"].to_list()) for s in SUBJECTS]
                for ts in set.intersection(*per_subject) if per_subject else set():
                    round_ts = ts + STEP
                    if round_ts in self.landed or round_ts in self.preexisting:
                        continue
                    if initial:
                        self.preexisting.add(round_ts)
                    else:
                        self.landed[round_ts] = seen_at
            # The hour is `data.parquet` (a run's write, or compacted) or the engine's segment
            # files, one per round (lake/segments.py); a round counts once all its rows are in.
            for preds in sorted(self._file("predictions", key).parent.glob("*.parquet")):
                seen_at = self._changed(preds)
                if seen_at is None:
                    continue
                try:
                    frame = pl.read_parquet(preds, columns=["round_ts", "status", "failed_reason", "latency_ms"])
                except (OSError, pl.exceptions.PolarsError):
                    continue  # compacted away between the listing and the read
                self._note_predictions(frame, seen_at)

    def _note_predictions(self, frame: pl.DataFrame, seen_at: float) -> None:
        for (round_ts,), rows in frame.group_by(["round_ts"]):
            if round_ts in self.persisted or rows.height < self.expected_rows:
                continue
            self.persisted[round_ts] = seen_at
            if rows["failed_reason"].cast(pl.String).str.starts_with("round missed").fill_null(False).any():
                self.missed.add(round_ts)
            self.latency_ms[round_ts] = [v for v in rows["latency_ms"].to_list() if v is not None]
            for status, count in rows.group_by("status").len().iter_rows():
                self.statuses[status] = self.statuses.get(status, 0) + count


def run_breakdown(dagster_home: Path, rounds: list[dt.datetime]) -> dict[dt.datetime, dict[str, float]]:
    """Per round: run created, RUN_START, predictions STEP_START and the asset's own timings."""
    import dagster as dg
    from dagster import DagsterEventType

    instance = dg.DagsterInstance.from_config(str(dagster_home))  # DAGSTER_PG_URL: as the node opened it
    found: dict[dt.datetime, dict[str, float]] = {}
    try:
        for record in instance.get_run_records(filters=dg.RunsFilter(job_name="predict_job")):
            tag = record.dagster_run.tags.get(LIVE_ROUND_TAG)
            if not tag:
                continue
            round_ts = parse_round_stamp(tag)
            if round_ts not in rounds:
                continue
            entry: dict[str, float] = {"created": record.create_timestamp.timestamp()}
            for log in instance.all_logs(record.dagster_run.run_id):
                event = log.dagster_event
                if event is None:
                    continue
                if event.event_type == DagsterEventType.RUN_START:
                    entry["run_start"] = log.timestamp
                elif event.event_type == DagsterEventType.STEP_START and event.step_key == "predictions":
                    entry["step_start"] = log.timestamp
                elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION and log.asset_materialization.asset_key.to_user_string() == "predictions":
                    metadata = log.asset_materialization.metadata
                    entry["materialized"] = log.timestamp
                    for name in ("model_seconds", "write_seconds"):
                        if name in metadata:
                            entry[name] = float(metadata[name].value)
            found[round_ts] = entry
    finally:
        instance.dispose()
    return found


def summarize(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<28} (no data)"
    return (
        f"  {label:<28} p50 {percentile(values, 50):7.3f}  p95 {percentile(values, 95):7.3f}  p99 {percentile(values, 99):7.3f}"
        f"  max {max(values):7.3f}  mean {statistics.fmean(values):7.3f}"
    )


def engine_breakdown(home: Path, rounds: list[dt.datetime]) -> dict[str, list[float]]:
    """The round engine's own stage timings (seconds) of the measured rounds."""
    from coordinator_dagster.engine.timing import END_TO_END, STAGES, recent_timings

    wanted = {r.strftime("%Y-%m-%dT%H:%M:%SZ") for r in rounds}
    records = [r for r in recent_timings(home / "engine", 10_000) if r.get("round") in wanted]
    return {name: [(r[end] - r[start]) / 1e6 for r in records if r.get(start) and r.get(end)] for name, start, end in (*STAGES, END_TO_END)}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds to measure (default 30)")
    parser.add_argument("--models", type=int, default=10, help="models in the manifest (default 10)")
    parser.add_argument(
        "--feed", choices=("listen", "poll"), default="listen", help="listen: the streaming listener writes the feed (as make run); poll: the minute ingest schedule"
    )
    parser.add_argument(
        "--path", choices=("engine", "runs", "both"), default="both",
        help="engine: the round engine in the listener's process (as make run); runs: a Dagster run per round (the listener with --no-round-engine); both in turn",
    )
    parser.add_argument("--round-timeout", type=float, default=240.0, help="give up if no round completes for this many seconds")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary COORDINATOR_HOME (its path is printed)")
    parser.add_argument("--sandbox-cost", action="store_true", help="measure the model sandbox's cost on the runner alone (benchmarks/sandbox_cost.py)")
    parser.add_argument(
        "--storage", choices=("sqlite", "postgres", "both"), default="sqlite", help="the Dagster instance's storage: SQLite files (as make run), a local PostgreSQL server, or both in turn"
    )
    parser.add_argument("--one-second", action="store_true", help="one-second rounds for --minutes minutes (benchmarks/one_second_benchmark.py)")
    parser.add_argument("--minutes", type=float, default=10.0, help="with --one-second: minutes measured (default 10)")
    parser.add_argument("--warmup", type=float, default=30.0, help="with --one-second: seconds after the first round before measuring (default 30)")
    args = parser.parse_args(argv)
    if args.one_second:
        from benchmarks.one_second_benchmark import run as one_second

        signal.signal(signal.SIGTERM, _interrupt)
        return one_second(args, write_manifest, free_port, stop_group)
    if args.sandbox_cost:
        from benchmarks.sandbox_cost import run as sandbox_cost

        return sandbox_cost(args.models, args.rounds, starts=10)
    # SIGTERM unwinds like Ctrl-C, through the `finally` that stops the node.
    signal.signal(signal.SIGTERM, _interrupt)
    summaries = {}
    paths = ("engine", "runs") if args.path == "both" else (args.path,)
    storages = ("sqlite", "postgres") if args.storage == "both" else (args.storage,)
    if len(paths) > 1 and len(storages) > 1:
        raise SystemExit("compare either the two paths or the two storages, not both at once")
    for storage in storages:
        for path in paths:
            label = path if len(paths) > 1 else storage
            if storage == "postgres":
                from tests.postgres_server import find_binaries, postgres_server

                bin_dir = find_binaries()
                if bin_dir is None:
                    raise SystemExit("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin); scripts/install_postgres.sh installs them")
                with postgres_server(bin_dir) as server:
                    summaries[label] = measure(args, server.database("bench"), path)
            else:
                summaries[label] = measure(args, None, path)
    if len(summaries) > 1:
        print()
        print("Side by side (landed -> persisted, seconds):")
        for label, lines in summaries.items():
            print(f"  {label:<9}{lines}")
    return 0


def measure(args: argparse.Namespace, pg_url: str | None, path: str = "engine") -> str:
    """One run of the node and its summary; returns its landed -> persisted line. `path`: the
    round engine predicts (as make run), or a Dagster run per round (the listener without it)."""
    home = Path(tempfile.mkdtemp(prefix="round-latency-"))
    manifest = home / "models.json"
    write_manifest(manifest, args.models)
    ports = {"DAGSTER_PORT": free_port(), "API_PORT": free_port(), "MODEL_RUNNER_PORT": free_port()}
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MODEL_RUNNER_URL", "DAGSTER_PG_URL")}
    if pg_url:
        env["DAGSTER_PG_URL"] = pg_url
        os.environ["DAGSTER_PG_URL"] = pg_url  # run_breakdown opens the same instance here
    env.update({k: str(v) for k, v in ports.items()})
    env.update({"COORDINATOR_HOME": str(home), "MODELS_MANIFEST": str(manifest), "RUN_SKIP_BOOTSTRAP": "1", "FEED_SUBJECTS": ",".join(SUBJECTS)})
    env["FEED_LIVE"] = "1" if args.feed == "listen" else "0"
    if path == "runs":
        env["RUN_FEEDS_CMD"] = f"{ROOT / '.venv' / 'bin' / 'coordinator'} feeds listen --no-round-engine"
    storage = "postgres" if pg_url else "sqlite"
    print(f"home {home}; ports {ports}; {args.models} models; {args.rounds} rounds; feed {args.feed}; instance storage {storage}; path {path}", flush=True)

    log = open(home / "run.log", "w")
    node = subprocess.Popen([sys.executable, str(LAUNCH), "bash", str(RUN_SH)], env=env, stdout=log, stderr=subprocess.STDOUT)
    watch = LakeWatch(home, args.models * len(SUBJECTS))
    started = time.time()
    measured: list[dt.datetime] = []
    try:
        watch.poll(initial=True)
        # Rounds whose data lands once the node has had time to start are the ones measured.
        first = dt.datetime.fromtimestamp((int(time.time()) // 60 + 2) * 60, tz=dt.timezone.utc)
        last_progress = time.time()
        while len(measured) < args.rounds:
            if node.poll() is not None:
                raise RuntimeError(f"the node stopped (status {node.returncode}); see {home / 'run.log'}")
            watch.poll()
            done = sorted(r for r in watch.persisted if r >= first and r in watch.landed and r not in watch.missed)
            if len(done) > len(measured):
                for r in done[len(measured) :]:
                    print(f"round {r:%H:%M}: landed +{watch.landed[r] - r.timestamp():5.1f} s, persisted {watch.persisted[r] - watch.landed[r]:5.1f} s after", flush=True)
                measured = done
                last_progress = time.time()
            if time.time() - last_progress > args.round_timeout + (120 if not measured else 0):
                raise RuntimeError(f"no round completed for {args.round_timeout:g} s; see {home / 'run.log'} and {home / 'logs'}")
            time.sleep(0.1)
        measured = measured[: args.rounds]
    finally:
        stop_group(node, signal.SIGTERM, 60)
        log.close()

    runs = run_breakdown(home / "dagster_home", measured)
    total = [watch.persisted[r] - watch.landed[r] for r in measured]
    feed_delay = [watch.landed[r] - r.timestamp() for r in measured]
    parts: dict[str, list[float]] = {k: [] for k in ("sensor wait", "run launch", "inputs step", "model calls", "write", "rest")}
    for r in measured:
        run = runs.get(r)
        if not run or not {"created", "run_start", "step_start"} <= set(run):
            continue
        landed, persisted = watch.landed[r], watch.persisted[r]
        parts["sensor wait"].append(run["created"] - landed)
        parts["run launch"].append(run["run_start"] - run["created"])
        parts["inputs step"].append(run["step_start"] - run["run_start"])
        model, write = run.get("model_seconds", 0.0), run.get("write_seconds", 0.0)
        parts["model calls"].append(model)
        parts["write"].append(write)
        parts["rest"].append(persisted - run["step_start"] - model - write)
    latencies = [v for r in measured for v in watch.latency_ms.get(r, [])]

    print()
    print(f"Round latency over {len(measured)} one-minute rounds, {args.models} models x {len(SUBJECTS)} subjects, instance on {storage}, path {path} (seconds)")
    print(f"  wall time {time.time() - started:.0f} s; load average {os.getloadavg()[0]:.2f}; rows by status {watch.statuses}")
    print(summarize("landed -> persisted", total))
    print("  breakdown:")
    breakdown = engine_breakdown(home, measured) if path == "engine" else parts
    for name, values in breakdown.items():
        print("  " + summarize(name, values))
    print(summarize("feed delay (round -> landed)", feed_delay))
    print(summarize("round -> persisted", [a + b for a, b in zip(feed_delay, total)]))
    if latencies:
        print(f"  model compute per call (ms)  p50 {percentile(latencies, 50):.3f}  p95 {percentile(latencies, 95):.3f}  max {max(latencies):.3f}")
    if parts["sensor wait"]:
        costs = {name: statistics.fmean(values) for name, values in parts.items() if values}
        largest = max(costs, key=costs.get)
        print(f"  largest cost: {largest} ({costs[largest]:.2f} s on average)")
    target = percentile(total, 50) <= 0.25 and percentile(total, 99) <= 1.0
    print(f"  target p50 <= 250 ms and p99 <= 1 s: {'met' if target else 'NOT met'}")
    if args.keep_home:
        print(f"  kept {home}")
    else:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    os.environ.pop("DAGSTER_PG_URL", None)
    line = f"{summarize('landed -> persisted', total)}; load average {os.getloadavg()[0]:.2f}"
    return " ".join(line.split())


if __name__ == "__main__":
    sys.exit(main())
