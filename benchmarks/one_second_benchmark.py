"""One-second rounds on `make run`'s processes: `round_latency_benchmark.py --one-second`.

    .venv/bin/python benchmarks/round_latency_benchmark.py --one-second --minutes 10 [--models 10]

Starts the node as `make run` does (scripts/run.sh: the report API, the model runner, the feed
listener with the round engine, `dagster dev` with its daemon) with FEED_KIND=tick,
FEED_GRANULARITY=1s, micro-batch scoring on (ROUND_ENGINE_SCORING=1) and a contract with four
scheduled predictions: BTC and ETH every second (1 s horizon) and every 5 s (5 s horizon), asked
of `--models` models. Once the engine has recorded its first round, it measures `--minutes`
minutes and prints:

  rounds      expected vs recorded on time per scope (missed: no full set of on-time rows)
  latency     p50/p95/p99/max of each of the engine's stages and end to end (landed -> persisted,
              <home>/engine/timings.jsonl), and round -> persisted
  CPU         the node's processes' CPU time over the window / wall time, in cores (the sum of
              utime+stime+cutime+cstime over the process tree under run.sh: a process that ends
              is counted through its parent), per process kind
  memory      each long-lived process's RSS, mean of the first vs the last minute
  scoring     lag: now - the newest round the engine's scorer has scored (engine/scored.json);
              leaderboard freshness: now - the `created_at` the API serves
  API         GET /reports/leaderboard and /v1/reports/predictions every second: errors, p50/p99

Figures are wall-clock on a shared machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = ["BTC", "ETH"]
# (scope suffix, interval = horizon in seconds)
CADENCES = [("1s", 1), ("5s", 5)]
CONTRACT = '''
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.domain_types import PredictionScope, ScheduledPrediction

CONTRACT = CrunchContract(
    scheduled_predictions=[
        ScheduledPrediction(
            scope_key=f"{subject.lower()}-{suffix}",
            scope=PredictionScope(subject=subject, step_seconds=1, horizon_seconds=seconds),
            prediction_interval_seconds=seconds,
            resolve_horizon_seconds=seconds,
        )
        for subject in %r
        for suffix, seconds in %r
    ],
    crunch_pubkey="CoordinatorExampLeCrunchPubkey11111111111111",
)
''' % (SUBJECTS, CADENCES)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---- the node's processes, from /proc ---------------------------------------------------------


def _processes() -> dict[int, tuple[int, float, int]]:
    """pid -> (ppid, CPU seconds of it and its reaped children, RSS bytes)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # After the command: state ppid ... utime(12) stime cutime cstime ... rss(22)
        cpu = sum(int(v) for v in fields[11:15]) / CLOCK_TICKS
        found[int(entry.name)] = (int(fields[1]), cpu, int(fields[21]) * PAGE)
    return found


def _tree(root: int, table: dict[int, tuple[int, float, int]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def _kind(pid: int, names: dict[int, str]) -> str:
    if pid not in names:
        try:
            names[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            names[pid] = ""
    cmd = names[pid][:160]  # the program and its first arguments (Dagster's carry a long instance ref)
    for needle, kind in (
        ("feeds listen", "listener+engine+scorer"),
        (" api --host", "report API"),
        ("models serve", "model runner"),
        ("api execute", "dagster runs"),
        ("dagster_webserver", "dagster webserver"),
        ("dagster._daemon", "dagster daemon"),
        ("api grpc", "dagster code server"),
        ("code-server", "dagster code server"),
        (" dev -w", "dagster dev"),
        ("models.worker", "model workers"),
        ("bwrap", "model workers"),
    ):
        if needle in cmd:
            return kind
    return "other"


class ProcessSampler:
    """Every second: CPU (cumulative) and RSS of each process under the node's root."""

    def __init__(self, root: int):
        self.root = root
        self.names: dict[int, str] = {}
        self.samples: list[tuple[float, dict[int, tuple[str, float, int]]]] = []

    def sample(self) -> None:
        table = _processes()
        now = time.time()
        self.samples.append((now, {pid: (_kind(pid, self.names), table[pid][1], table[pid][2]) for pid in _tree(self.root, table)}))

    def cpu(self, start: float, end: float) -> tuple[float, dict[str, float]]:
        """(cores over [start, end], cores per process kind)."""
        first = next(s for s in self.samples if s[0] >= start)
        last = [s for s in self.samples if s[0] <= end][-1]
        wall = last[0] - first[0]
        per_kind: dict[str, float] = {}
        for sign, (_, procs) in ((-1, first), (1, last)):
            for kind, cpu, _ in procs.values():
                per_kind[kind] = per_kind.get(kind, 0.0) + sign * cpu
        return sum(per_kind.values()) / wall, {k: v / wall for k, v in sorted(per_kind.items(), key=lambda kv: -kv[1])}

    def rss(self, start: float, end: float, span: float = 60.0) -> list[tuple[str, int, float, float, float]]:
        """Per process alive through [start, end]: (kind, pid, MB first minute, MB last minute, MB max)."""
        window = [s for s in self.samples if start <= s[0] <= end]
        seen = lambda samples: set().union(*(set(p) for _, p in samples))  # noqa: E731
        alive = seen([s for s in window if s[0] <= start + span]) & seen([s for s in window if s[0] >= end - span])
        out = []
        for pid in alive:
            head = [p[pid][2] for t, p in window if t <= start + span and pid in p]
            tail = [p[pid][2] for t, p in window if t >= end - span and pid in p]
            peak = max(p[pid][2] for _, p in window if pid in p)
            out.append((next(p[pid][0] for _, p in window if pid in p), pid, statistics.fmean(head) / 2**20, statistics.fmean(tail) / 2**20, peak / 2**20))
        return sorted(out)


# ---- the API, polled every second -------------------------------------------------------------


class ApiPoller(threading.Thread):
    """GET the leaderboard and the newest predictions every second; errors, latencies, freshness."""

    ROUTES = {"leaderboard": "/reports/leaderboard", "predictions": "/v1/reports/predictions?limit=20"}

    def __init__(self, base: str):
        super().__init__(name="api-poller", daemon=True)
        self.base = base
        self.stop = threading.Event()
        self.calls: list[tuple[float, str, bool, float, str]] = []  # (at, route, ok, seconds, error)
        self.board_age: list[tuple[float, float]] = []  # (at, now - leaderboard created_at)
        self.newest_prediction: list[tuple[float, float]] = []  # (at, now - newest round served)

    def run(self) -> None:
        while not self.stop.wait(1.0 - time.time() % 1.0):
            for route, path in self.ROUTES.items():
                started = time.time()
                try:
                    with urllib.request.urlopen(self.base + path, timeout=10) as answer:
                        body = json.loads(answer.read())
                    self.calls.append((started, route, True, time.time() - started, ""))
                except Exception as error:  # noqa: BLE001 - every failure is counted
                    self.calls.append((started, route, False, time.time() - started, f"{type(error).__name__}: {error}"[:200]))
                    continue
                if route == "leaderboard":
                    stamps = [row.get("created_at") for row in body if row.get("created_at")]
                    if stamps:
                        self.board_age.append((started, started - max(_epoch(s) for s in stamps)))
                else:
                    rounds = [row.get("round_ts") for row in body.get("items", []) if row.get("round_ts")]
                    if rounds:
                        self.newest_prediction.append((started, started - max(_epoch(s) for s in rounds)))


def _epoch(text: str) -> float:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).timestamp()


# ---- after the run: what the lake and the engine recorded -------------------------------------


def round_counts(home: Path, start: float, end: float, models: int) -> list[tuple[str, int, int, dict[str, int]]]:
    """Per scope: (scope, rounds expected in [start, end), rounds with every model on time, rows by status)."""
    import polars as pl

    sys.path.insert(0, str(home))
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.lake.store import Lake
    from coordinator_dagster.windows import window_key

    contract = load_contract("bench_contract:CONTRACT")
    lake = Lake.for_contract(home, contract)
    keys = sorted({window_key(dt.datetime.fromtimestamp(t, tz=dt.timezone.utc)) for t in (start, end)})
    rows = pl.concat([lake.read("predictions", key) for key in keys], how="diagonal_relaxed")
    lo, hi = (dt.datetime.fromtimestamp(t, tz=dt.timezone.utc) for t in (start, end))
    rows = rows.filter((pl.col("round_ts") >= lo) & (pl.col("round_ts") < hi))
    out = []
    for scheduled in contract.scheduled_predictions:
        interval = scheduled.prediction_interval_seconds
        expected = [t for t in range(int(start) + (-int(start)) % interval, int(end - 1e-9) + 1, interval) if start <= t < end]
        mine = rows.filter(pl.col("scope_key") == scheduled.scope_key)
        on_time = mine.filter(pl.col("status").is_in(["PENDING", "FAILED"])).group_by("round_ts").len().filter(pl.col("len") == models)
        statuses = {s: n for s, n in mine.group_by("status").len().iter_rows()}
        out.append((scheduled.scope_key, len(expected), on_time.height, statuses))
    return out


def engine_stages(home: Path, start: float, end: float) -> dict[str, list[float]]:
    from coordinator_dagster.engine.timing import END_TO_END, STAGES, recent_timings

    records = [r for r in recent_timings(home / "engine", 1_000_000) if start * 1e6 <= r.get("round_us", 0) < end * 1e6]
    stages = {name: [(r[b] - r[a]) / 1e3 for r in records if r.get(a) and r.get(b)] for name, a, b in (*STAGES, END_TO_END)}
    stages["round -> persisted"] = [(r["persisted_us"] - r["round_us"]) / 1e3 for r in records if r.get("persisted_us")]
    return stages


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def _line(label: str, values: list[float], unit: str = "ms") -> str:
    if not values:
        return f"  {label:<26} (no data)"
    return f"  {label:<26} n {len(values):5d}  p50 {_pct(values, 50):8.1f}  p95 {_pct(values, 95):8.1f}  p99 {_pct(values, 99):8.1f}  max {max(values):8.1f} {unit}"


# ---- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, write_manifest, free_port, stop_group) -> int:
    home = Path(tempfile.mkdtemp(prefix="one-second-"))
    manifest = home / "models.json"
    write_manifest(manifest, args.models)
    (home / "bench_contract.py").write_text(CONTRACT)
    ports = {"DAGSTER_PORT": free_port(), "API_PORT": free_port(), "MODEL_RUNNER_PORT": free_port()}
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MODEL_RUNNER_URL", "DAGSTER_PG_URL") and not k.startswith("FEED_")}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(
        COORDINATOR_HOME=str(home), MODELS_MANIFEST=str(manifest), RUN_SKIP_BOOTSTRAP="1", FEED_SUBJECTS=",".join(SUBJECTS),
        FEED_LIVE="1", FEED_SOURCE="synthetic", FEED_KIND="tick", FEED_GRANULARITY="1s", ROUND_ENGINE_SCORING="1",
        CRUNCH_CONFIG_MODULE="bench_contract:CONTRACT", PYTHONPATH=os.pathsep.join(p for p in (str(home), env.get("PYTHONPATH", "")) if p),
    )
    print(f"home {home}; ports {ports}; {args.models} models x {len(SUBJECTS)} subjects; scopes every {', '.join(s for s, _ in CADENCES)}; {args.minutes:g} minutes", flush=True)
    log = open(home / "run.log", "w")
    node = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "launch.py"), "bash", str(ROOT / "scripts" / "run.sh")], env=env, stdout=log, stderr=subprocess.STDOUT)
    sampler = ProcessSampler(node.pid)
    poller = ApiPoller(f"http://127.0.0.1:{ports['API_PORT']}")
    timings = home / "engine" / "timings.jsonl"
    scored_file = home / "engine" / "scored.json"
    lag: list[tuple[float, float]] = []
    loads: list[tuple[float, float]] = []
    started = time.time()
    try:
        while not (timings.exists() and timings.stat().st_size):
            if node.poll() is not None:
                raise RuntimeError(f"the node stopped (status {node.returncode}); see {home / 'run.log'}")
            if time.time() - started > 300:
                raise RuntimeError(f"no round recorded in 300 s; see {home / 'logs'}")
            time.sleep(0.5)
        # Let the first rounds and the first scoring pass settle, then measure whole seconds.
        start = float(int(time.time()) + args.warmup)
        end = start + args.minutes * 60
        print(f"first round after {time.time() - started:.0f} s; measuring {dt.datetime.fromtimestamp(start, dt.timezone.utc):%H:%M:%S} to {dt.datetime.fromtimestamp(end, dt.timezone.utc):%H:%M:%S} UTC", flush=True)
        poller.start()
        last_print = 0.0
        while time.time() < end + 2:
            if node.poll() is not None:
                raise RuntimeError(f"the node stopped (status {node.returncode}); see {home / 'run.log'}")
            sampler.sample()
            now = time.time()
            loads.append((now, os.getloadavg()[0]))
            try:
                cursor = json.loads(scored_file.read_text())
                newest = max((_epoch(v) for k, v in cursor.items() if k.endswith("-1s") and v), default=None)
                if newest is not None:
                    lag.append((now, now - newest))
            except (OSError, ValueError):
                pass
            if now - last_print >= 60 and now >= start:
                last_print = now
                rss = sum(p[2] for p in sampler.samples[-1][1].values()) / 2**20
                print(f"  {dt.datetime.fromtimestamp(now, dt.timezone.utc):%H:%M:%S}: load {loads[-1][1]:.2f}; node RSS {rss:.0f} MB; scoring lag {lag[-1][1] if lag else float('nan'):.1f} s", flush=True)
            time.sleep(1.0 - time.time() % 1.0)
    finally:
        poller.stop.set()
        stop_group(node, signal.SIGTERM, 60)
        log.close()

    window_loads = [v for t, v in loads if start <= t <= end]
    print()
    print(f"One-second rounds, {args.minutes:g} min, {args.models} models x {len(SUBJECTS)} subjects, make run's processes, micro-batch scoring on")
    print(f"  load average over the window: mean {statistics.fmean(window_loads):.2f}, max {max(window_loads):.2f} (2 cores)")
    print("  rounds (expected / every model on time; rows by status):")
    missed_total = 0
    for scope, expected, on_time, statuses in round_counts(home, start, end, args.models):
        missed_total += expected - on_time
        print(f"    {scope:<8} {expected:4d} / {on_time:4d}  missed {expected - on_time:3d}  {statuses}")
    print("  engine stages (ms):")
    stages = engine_stages(home, start, end)
    for name, values in stages.items():
        print(_line(name, values))
    cores, per_kind = sampler.cpu(start, end)
    print(f"  node CPU {cores:.3f} cores: " + ", ".join(f"{k} {v:.3f}" for k, v in per_kind.items()))
    print("  RSS (MB, mean of the first minute -> the last minute, max):")
    workers = [r for r in sampler.rss(start, end) if r[0] == "model workers"]
    for kind, pid, head, tail, peak in sampler.rss(start, end):
        if kind != "model workers":
            print(f"    {kind:<24} pid {pid:<7} {head:7.1f} -> {tail:7.1f}  ({tail - head:+6.1f})  max {peak:7.1f}")
    if workers:
        head, tail = sum(r[2] for r in workers), sum(r[3] for r in workers)
        print(f"    {len(workers)} model workers{'':<12}      {head:7.1f} -> {tail:7.1f}  ({tail - head:+6.1f})  (sum)")
    by_minute = [statistics.fmean(sum(p[2] for p in procs.values()) for t, procs in sampler.samples if m <= t < m + 60) / 2**20 for m in range(int(start), int(end), 60)]
    print("    node RSS by minute (MB): " + " ".join(f"{v:.0f}" for v in by_minute))
    in_window = lambda pairs: [v for t, v in pairs if start <= t <= end]  # noqa: E731
    print(_line("scoring lag (now - newest scored 1 s round)", [v * 1e3 for v in in_window(lag)]))
    print(_line("leaderboard age (now - created_at)", [v * 1e3 for v in in_window(poller.board_age)]))
    print(_line("API newest round age", [v * 1e3 for v in in_window(poller.newest_prediction)]))
    for route in ApiPoller.ROUTES:
        calls = [c for c in poller.calls if c[1] == route and start <= c[0] <= end]
        errors = [c for c in calls if not c[2]]
        print(_line(f"API {route} ({len(errors)} errors of {len(calls)})", [c[3] * 1e3 for c in calls if c[2]]))
        for c in errors[:3]:
            print(f"      {dt.datetime.fromtimestamp(c[0], dt.timezone.utc):%H:%M:%S} {c[4]}")
    e2e = stages["end_to_end"]
    verdict = {
        "0 missed rounds": missed_total == 0,
        "landed -> persisted p99 <= 500 ms": bool(e2e) and _pct(e2e, 99) <= 500,
        "node CPU <= 1 core": cores <= 1.0,
        "API errors 0": not any(not c[2] for c in poller.calls if start <= c[0] <= end),
    }
    print("  targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in verdict.items()))
    if args.keep_home:
        print(f"  kept {home}")
    else:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    return 0
