"""Load benchmark of the report API: real uvicorn on loopback, ≥1,000,000 predictions, 50
concurrent clients, with and without a concurrent rewrite ("backfill") of lake partitions.

Usage: .venv/bin/python benchmarks/api_load_benchmark.py [--rows 1000000] [--clients 50] [--seconds 10]
       [--miss] [--client wrk|python] [--routes leaderboard,models,...] [--replicas 1]

`--miss` gives every request its own query string (a `_miss=<n>` parameter no route reads), as a
dashboard sending `projectIds`, `start` and `end` to every route does; the response cache keys
on the parameters a route reads, so such requests are answered from it. `--no-cache` sends
`Cache-Control: no-cache` with every request: the cache never answers, every request runs its
route (the uncached path: in-memory tables, DuckDB, validation, JSON). `ROUTES` lists the dashboard's routes; a route this build
does not serve (404 on the warm-up call) is reported and skipped, so routes can be listed before
they exist. `--client wrk` drives the load with wrk (`apt-get install wrk`), which costs the two
shared cores far less than Python clients; the server's RSS and the load average are printed.
`--replicas N` starts N API processes over the same lake and spreads the clients' connections
over them (with wrk: one wrk per replica, its p50/p99 the slowest replica's).

Seeds the lake through `Lake.write_windows` (50 models × 2 scopes × one-minute rounds, scores
for every hour but the newest, a leaderboard and two checkpoints), starts
`uvicorn --factory api.app:create_app` (one worker) in its own process, then for each route runs
`--clients` keep-alive clients (threads in `--client-processes` processes) for `--seconds` and prints requests/s, p50, p99, max and errors:
first without writes, then while another process rewrites prediction and score partitions and the
leaderboard in a loop, as a backfill or re-scoring run does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordinator_dagster.lake import schemas  # noqa: E402
from coordinator_dagster.scoring.emission import default_build_emission  # noqa: E402
from coordinator_dagster.lake.store import Lake  # noqa: E402
from coordinator_dagster.models.rounds import ROUND_STAMP_FORMAT  # noqa: E402
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT, window_keys_between  # noqa: E402

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 16, tzinfo=UTC)
WINDOWS = ("score_recent", "score_steady", "score_anchor")
SCOPES = (("btc-60s", "BTC"), ("eth-60s", "ETH"))
# The dashboard's chart window: the newest seven days of the seeded data (see `seed`).
CHART_DAYS = 7


def routes(end: dt.datetime) -> list[tuple[str, str, dict]]:
    """(label, path, query) of every route measured; the dashboard's routes first. Add a route
    here before it exists: the run reports it as not served and goes on."""
    start = (end - dt.timedelta(days=CHART_DAYS)).isoformat()
    chart = {"projectIds": "m-000,m-001", "start": start, "end": end.isoformat()}
    return [
        ("leaderboard", "/reports/leaderboard", {}),
        ("models", "/reports/models", {}),
        ("schema", "/reports/schema", {}),
        ("checkpoints", "/reports/checkpoints", {}),
        ("checkpoint emission", "/reports/checkpoints/CKP-2026-11-15/emission", {}),
        ("latest emission", "/reports/emissions/latest", {}),
        ("models/global (chart)", "/reports/models/global", chart),
        ("predictions 7-day chart, 2 models", "/reports/predictions", {**chart, "limit": 1000}),
        ("predictions first page (limit=100)", "/reports/predictions", {"limit": 100}),
    ]


def hour_frames(hour: dt.datetime, models: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rounds = pl.datetime_range(hour, hour + dt.timedelta(minutes=59), "1m", time_zone="UTC", eager=True).alias("round_ts")
    grid = (
        pl.DataFrame(rounds)
        .join(pl.DataFrame({"scope_key": [s for s, _ in SCOPES], "subject": [x for _, x in SCOPES]}), how="cross")
        .join(pl.DataFrame({"model_id": [f"m-{i:03d}" for i in range(models)]}), how="cross")
    )
    ts = pl.col("round_ts").dt.strftime(ROUND_STAMP_FORMAT)
    preds = grid.with_columns(
        pl.concat_str([pl.col("scope_key"), pl.lit("@"), ts]).alias("input_id"),
    ).with_columns(
        pl.concat_str([pl.col("input_id"), pl.lit("/"), pl.col("model_id")]).alias("prediction_id"),
        (pl.col("round_ts") + pl.duration(seconds=60)).alias("resolvable_at"),
        pl.lit("PENDING").alias("status"),
        ((pl.col("round_ts").dt.minute() + pl.col("model_id").str.slice(2).cast(pl.Int64)).sin() * 0.01).alias("value"),
        pl.lit(None, dtype=pl.String).alias("output"),
        pl.lit(None, dtype=pl.String).alias("failed_reason"),
        pl.lit(3.0).alias("latency_ms"),
        (pl.col("round_ts") + pl.duration(seconds=1)).alias("predicted_at"),
    )
    preds = schemas.conform(preds.select(schemas.PREDICTIONS.names()), schemas.PREDICTIONS, "predictions")
    scores = preds.select(
        "prediction_id", "input_id", "scope_key", "subject", "model_id", "round_ts", "resolvable_at",
        pl.col("value").alias("prediction_value"), pl.lit(100.0).alias("entry_price"), pl.lit(101.0).alias("resolved_price"),
        pl.lit(0.01).alias("profit"), pl.lit(True).alias("direction_up"), (pl.col("value") * 100).alias("value"),
        pl.lit(True).alias("success"), pl.lit(None, dtype=pl.String).alias("failed_reason"), pl.lit("{}").alias("result"),
        pl.lit("v1").alias("scoring_version"),
    )
    return preds, schemas.conform(scores, schemas.SCORES, "scores")


def leaderboard(models: int, version: int = 0) -> pl.DataFrame:
    rows = [
        {
            "rank": r + 1, "model_id": f"m-{r:03d}", "model_name": f"Model {r}", "cruncher": f"c{r}", "ranking_key": "score_recent",
            "ranking_value": 1.0 - r / models + version * 1e-6, "is_ensemble": False, "score_recent": 1.0 - r / models,
            "score_steady": 0.5, "score_anchor": 0.25, "prediction_count": 10_000 + version, "as_of": START,
        }
        for r in range(models)
    ]
    return schemas.conform(pl.DataFrame(rows), schemas.leaderboard_schema(WINDOWS), "leaderboard")


def snapshot_frame(hour: dt.datetime, models: int) -> pl.DataFrame:
    """One snapshot per model for the hour, as the snapshots asset writes them."""
    rows = [
        {
            "model_id": f"m-{i:03d}", "period_start": hour, "period_end": hour + dt.timedelta(hours=1), "prediction_count": 120,
            "scored_count": 120, "failed_count": 0, "value": 1.0 - i / models, "result_summary": json.dumps({"value": 1.0 - i / models}),
            "scoring_version": "v1",
        }
        for i in range(models)
    ]
    return schemas.conform(pl.DataFrame(rows), schemas.SNAPSHOTS, "snapshots")


def models_frame(models: int) -> pl.DataFrame:
    rows = [
        {"model_id": f"m-{i:03d}", "name": f"Model {i}", "cruncher": f"c{i}", "cruncher_index": i, "entrypoint": "main:Model",
         "joined_at": START, "active": True, "status": "healthy"}
        for i in range(models)
    ]
    return schemas.conform(pl.DataFrame(rows), schemas.MODELS, "models")


def seed(home: Path, rows: int, models: int) -> tuple[Lake, list[str]]:
    lake = Lake(home, window_names=WINDOWS)
    per_hour = models * len(SCOPES) * 60
    hours = -(-rows // per_hour)
    keys = window_keys_between(START, START + dt.timedelta(hours=hours))
    for i, key in enumerate(keys):
        preds, scores = hour_frames(dt.datetime.strptime(key, WINDOW_KEY_FORMAT).replace(tzinfo=UTC), models)
        lake.write("predictions", preds, key)
        if i < len(keys) - 1:
            lake.write("scores", scores, key)
            lake.write("snapshots", snapshot_frame(dt.datetime.strptime(key, WINDOW_KEY_FORMAT).replace(tzinfo=UTC), models), key)
    lake.write("leaderboard", leaderboard(models))
    lake.write("models", models_frame(models))
    for period in ("2026-11-08", "2026-11-15"):
        entries = [{"rank": r + 1, "model_id": f"m-{r:03d}", "cruncher": f"c{r}", "cruncher_index": r, "ranking_value": 1.0 / (r + 1)} for r in range(models)]
        emission = default_build_emission(entries, "CrunchPubkey1111", "ComputeProvider1", None)
        start = dt.datetime.strptime(period, "%Y-%m-%d").replace(tzinfo=UTC)
        lake.write(
            "checkpoints",
            pl.DataFrame({
                "checkpoint_id": [f"CKP-{period}"], "period_start": [start], "period_end": [start + dt.timedelta(days=7)],
                "status": ["PENDING"], "ranking_key": ["value"], "model_count": [models],
                "entries": [json.dumps(entries)], "emission": [json.dumps(emission.model_dump(mode="json"))], "merkle_root": [None],
            }),
            period,
        )
    return lake, keys


def rewrite_loop(home: str, keys: list[str], models: int, stop, counter, pause: float) -> None:
    """Rewrite prediction, score and snapshot partitions (the six newest hours, in turn) and the leaderboard,
    `pause` seconds apart (0: as fast as the disk allows, a worst case for the API's caches)."""
    lake = Lake(home, window_names=WINDOWS)
    frames = {key: hour_frames(dt.datetime.strptime(key, WINDOW_KEY_FORMAT).replace(tzinfo=UTC), models) for key in keys[-6:]}
    i = 0
    while not stop.is_set():
        key = keys[-1 - (i % 6)]
        preds, scores = frames[key]
        lake.write("predictions", preds, key)
        if key != keys[-1]:
            lake.write("scores", scores, key)
            # A re-scored hour's snapshots too: the API's in-memory copy follows them file by file.
            lake.write("snapshots", snapshot_frame(dt.datetime.strptime(key, WINDOW_KEY_FORMAT).replace(tzinfo=UTC), models), key)
        lake.write("leaderboard", leaderboard(models, i + 1))
        i += 1
        counter.value = i
        if pause:
            time.sleep(pause)


def _client_process(
    ports: list[int], first: int, target: str, threads: int, seconds: float, out, miss: bool = False, no_cache: bool = False
) -> None:
    """`threads` keep-alive HTTP/1.1 clients (stdlib http.client: far less client CPU per request
    than httpx, so the figures measure the server) hammering `target` until the deadline; client
    i of the run (counted from `first`) talks to replica i mod len(ports)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(port: int) -> None:
        mine, bad = [], 0
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        sep = "&" if "?" in target else "?"
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                connection.request(
                    "GET", f"{target}{sep}_miss={threading.get_ident()}-{len(mine)}-{os.getpid()}" if miss else target,
                    headers={"Cache-Control": "no-cache"} if no_cache else {},
                )
                response = connection.getresponse()
                response.read()
                bad += response.status != 200
            except (OSError, http.client.HTTPException):
                bad += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            mine.append((time.perf_counter() - started) * 1000)
        connection.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    workers = [threading.Thread(target=client, args=(ports[(first + i) % len(ports)],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put((latencies, errors[0]))


def hammer(
    ports: list[int], path: str, params: dict, clients: int, seconds: float, processes: int, miss: bool = False, client: str = "python", no_cache: bool = False
) -> dict:
    target = path + ("?" + urllib.parse.urlencode(params) if params else "")
    if client == "wrk":
        if len(ports) == 1:
            return hammer_wrk(ports[0], target, clients, seconds, miss, no_cache)
        # One wrk per replica, the connections split between them, all at once.
        shares = [clients // len(ports) + (i < clients % len(ports)) for i in range(len(ports))]
        found: list[dict] = [{}] * len(ports)

        def one(i: int) -> None:
            found[i] = hammer_wrk(ports[i], target, shares[i], seconds, miss, no_cache)

        runs = [threading.Thread(target=one, args=(i,)) for i in range(len(ports))]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
        # wrk reports percentiles, not samples: the slowest replica's p50/p99 stand for all.
        return {
            "n": sum(r["n"] for r in found), "rps": sum(r["rps"] for r in found), "p50": max(r["p50"] for r in found),
            "p99": max(r["p99"] for r in found), "max": max(r["max"] for r in found), "errors": sum(r["errors"] for r in found),
        }
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    firsts = [sum(shares[:i]) for i in range(len(shares))]
    procs = [
        ctx.Process(target=_client_process, args=(ports, first, target, n, seconds, out, miss, no_cache))
        for n, first in zip(shares, firsts)
        if n
    ]
    began = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - began
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    # Throughput over the measuring window (process start-up excluded as well as we can).
    return {"n": len(latencies), "rps": len(latencies) / min(elapsed, seconds), "p50": pick(0.5), "p99": pick(0.99), "max": latencies[-1], "errors": errors}


WRK_SCRIPT = """
local counter, id = 0, 0
function setup(thread) id = id + 1; thread:set("id", id) end
request = function()
  local path = os.getenv("BENCH_PATH")
  if os.getenv("BENCH_MISS") == "1" then
    counter = counter + 1
    local sep = string.find(path, "?", 1, true) and "&" or "?"
    path = path .. sep .. "_miss=" .. id .. "-" .. counter
  end
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %f %f %f %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def hammer_wrk(port: int, target: str, clients: int, seconds: float, miss: bool, no_cache: bool = False) -> dict:
    """The same measurement with wrk: `clients` connections over two threads."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        done = subprocess.run(
            ["wrk", "-t2", f"-c{clients}", f"-d{seconds:.0f}s", "--timeout", "30s", "-s", script.name]
            + (["-H", "Cache-Control: no-cache"] if no_cache else []) + [f"http://127.0.0.1:{port}"],
            env={**os.environ, "BENCH_PATH": target, "BENCH_MISS": "1" if miss else "0"}, capture_output=True, text=True, check=True,
        )
    finally:
        os.unlink(script.name)
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    n, duration_us, p50, p99, top, bad_status, socket_errors = line.split()[1:]
    return {
        "n": int(n), "rps": int(n) / (int(duration_us) / 1e6), "p50": float(p50) / 1000, "p99": float(p99) / 1000,
        "max": float(top) / 1000, "errors": int(bad_status) + int(socket_errors),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used: per request, the server's cost whatever else
    runs on the machine (requests per second on shared cores measure the neighbours too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "coordinator-api-load")
    parser.add_argument("--reuse-lake", action="store_true", help="keep the lake already seeded under --home (same --rows and --models)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=18766)
    parser.add_argument("--rewrite-pause", type=float, default=0.0, help="seconds between rewrites in the backfill loop")
    parser.add_argument("--client-processes", type=int, default=2, help="client processes sharing the clients (threads)")
    parser.add_argument("--miss", action="store_true", help="a distinct query string per request: the response cache never answers")
    parser.add_argument("--no-cache", action="store_true", help="send Cache-Control: no-cache: every request runs its route")
    parser.add_argument("--client", choices=("python", "wrk"), default="python", help="load generator")
    parser.add_argument("--routes", help="comma-separated labels (or label prefixes) of the routes to measure; default all")
    parser.add_argument("--no-rewrites", action="store_true", help="skip the phase with a concurrent rewrite loop")
    parser.add_argument("--replicas", type=int, default=1, help="API processes over the same lake, the clients' connections spread over them")
    args = parser.parse_args()

    began = time.perf_counter()
    if args.reuse_lake and (args.home / "lake" / "leaderboard").is_dir():
        lake = Lake(args.home, window_names=WINDOWS)
        per_hour = args.models * len(SCOPES) * 60
        keys = window_keys_between(START, START + dt.timedelta(hours=-(-args.rows // per_hour)))
    else:
        shutil.rmtree(args.home, ignore_errors=True)
        lake, keys = seed(args.home, args.rows, args.models)
    total = lake.query("SELECT count(*) AS n FROM raw_predictions")["n"][0]
    print(f"lake {args.home}: {total:,} predictions in {len(keys)} hourly partitions, seeded in {time.perf_counter() - began:.1f} s")

    ports = [args.port + i for i in range(args.replicas)]
    replicas = [
        subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--port", str(port), "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env={**os.environ, "COORDINATOR_HOME": str(args.home)}, preexec_fn=reset_signals,
        )
        for port in ports
    ]
    base = f"http://127.0.0.1:{args.port}"

    def server_rss() -> tuple[float, float]:
        figures = [rss_mb(p.pid) for p in replicas]
        return sum(f[0] for f in figures), sum(f[1] for f in figures)

    def server_cpu() -> float:
        return sum(cpu_seconds(p.pid) for p in replicas)

    hours = len(keys)
    measured = routes(START + dt.timedelta(hours=hours))
    if args.routes:
        wanted = [w.strip() for w in args.routes.split(",") if w.strip()]
        measured = [r for r in measured if any(r[0].startswith(w) for w in wanted)]
    try:
        for port in ports:
            for _ in range(600):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
        served = []
        for name, path, params in measured:
            answer = httpx.get(base + path, params=params, timeout=60)
            if answer.status_code == 404 and "detail" in answer.json() and answer.json()["detail"] == "Not Found":
                print(f"{name:36s} not served by this build: skipped")
                continue
            answer.raise_for_status()
            for port in ports:  # every replica builds its answers before it is measured
                for _ in range(2):
                    httpx.get(f"http://127.0.0.1:{port}{path}", params=params, timeout=60).raise_for_status()
            served.append((name, path, params))
        clients = f"wrk, 2 threads" if args.client == "wrk" else f"{args.client_processes} processes of threads"
        workers = "one uvicorn worker" if args.replicas == 1 else f"{args.replicas} API replicas of one worker"
        print(f"{args.clients} concurrent clients ({clients}), {args.seconds:.0f} s per route, {workers}, {os.cpu_count()} cores, "
              f"{'distinct query strings' if args.miss else 'one query string'}, {'Cache-Control: no-cache (cache never answers)' if args.no_cache else 'response cache on'}")
        print(f"server RSS after warm-up: {server_rss()[0]:.0f} MB; load average {os.getloadavg()[0]:.2f}")
        phases = (("no writes", False),) if args.no_rewrites else (("no writes", False), ("during a concurrent rewrite loop", True))
        for label, backfill in phases:
            # spawn, not fork: this process already runs DuckDB threads, which a fork can deadlock.
            ctx = mp.get_context("spawn")
            stop, counter = ctx.Event(), ctx.Value("l", 0)
            writer = None
            if backfill:
                writer = ctx.Process(target=rewrite_loop, args=(str(args.home), keys, args.models, stop, counter, args.rewrite_pause), daemon=True)
                writer.start()
                # Measure only once the writer is rewriting (its start-up takes seconds on a busy machine).
                deadline = time.monotonic() + 120
                while counter.value == 0 and time.monotonic() < deadline:
                    time.sleep(0.1)
            print(f"-- {label}")
            for name, path, params in served:
                before, cpu = counter.value, server_cpu()
                r = hammer(ports, path, params, args.clients, args.seconds, args.client_processes, args.miss, args.client, args.no_cache)
                extra = f"  rewrites meanwhile={counter.value - before}" if backfill else ""
                print(
                    f"{name:36s} {r['rps']:7.1f} req/s  p50={r['p50']:6.1f} ms  p99={r['p99']:6.1f} ms  max={r['max']:6.1f} ms  n={r['n']}  "
                    f"errors={r['errors']}  server cpu/req={(server_cpu() - cpu) / max(r['n'], 1) * 1000:.2f} ms  load={os.getloadavg()[0]:.2f}{extra}",
                    flush=True,
                )
            if writer is not None:
                stop.set()
                writer.join(30)
        now, peak = server_rss()
        print(f"server RSS {now:.0f} MB (peak {peak:.0f} MB)")
    finally:
        for replica in replicas:
            replica.send_signal(signal.SIGINT)
        for replica in replicas:
            replica.wait(10)


if __name__ == "__main__":
    main()
