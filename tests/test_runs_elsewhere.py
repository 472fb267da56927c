"""Runs outside the daemon's process tree (docs/deployment.md, "Runs elsewhere"), on one machine:

- the code location served by a gRPC code server of its own (`dagster code-server start`) and
  reached through deploy/workspace_code_server.yaml: an instance with no webserver and no daemon
  loads the definitions from it, and a run launched through it executes as a child of the code
  server, not of the process that launched it;
- steps on celery workers (dagster-celery, coordinator_dagster/code_location_celery.py): a real
  Redis broker (tests/redis_server.py), two `dagster-celery worker start` processes with
  deploy/celery.yaml, the instance on PostgreSQL (tests/postgres_server.py); a partition of
  feed_records materializes, and its step ran in one of the workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from coordinator_dagster.lake.store import Lake
from tests.process_support import free_port, wait_for

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKSPACE = ROOT / "deploy" / "workspace_code_server.yaml"
CELERY_YAML = ROOT / "deploy" / "celery.yaml"
# The instance settings `make run` writes (its run coordinator launches a run at once: no daemon
# is needed to take it off a queue), plus the PostgreSQL block where the instance is on it.
NODE_YAML = ROOT / "scripts" / "dagster.yaml"
PG_BLOCK = ROOT / "scripts" / "dagster_postgres.yaml"
PARTITION = "2026-11-20-08:00"
START = 300.0  # generous caps for a loaded machine: each is a poll for a condition, not a sleep


# ---- processes ---------------------------------------------------------------------------------


def descendants(root: int) -> set[int]:
    """Every live process below `root`, from the kernel's child lists (/proc/PID/task/TID/children)."""
    found: set[int] = set()
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in map(int, children.read_text().split()):
                    if child not in found:
                        found.add(child)
                        frontier.append(child)
    return found


class TreeWatch:
    """Records every process that appears below `root` while the block runs (polled every 50 ms:
    a Dagster run process lives for seconds, long enough to be seen)."""

    def __init__(self, root: int):
        self.root, self.seen, self._stop = root, set(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.seen |= descendants(self.root)
            self._stop.wait(0.05)

    def __enter__(self) -> TreeWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def started(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A process in a session of its own, stopped with everything it started at the end."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def opened(dagster_home: str) -> Iterator[dg.DagsterInstance]:
    """The instance as every process of the node opens it: $DAGSTER_HOME/dagster.yaml."""
    instance = dg.DagsterInstance.from_config(dagster_home)
    try:
        yield instance
    finally:
        instance.dispose()


def node_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "COORDINATOR_", "FEED_", "PYTEST_"))}
    return {**env, "COORDINATOR_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(dagster_home), "PATH": f"{BIN}:{env.get('PATH', '')}", **extra}


@contextlib.contextmanager
def code_server(tmp_path: Path, env: dict[str, str], module: str) -> Iterator[tuple[subprocess.Popen, dict[str, str]]]:
    """`dagster code-server start` on a loopback port; yields it and the environment that points
    deploy/workspace_code_server.yaml at it, once it answers."""
    from dagster._grpc.client import DagsterGrpcClient

    port = free_port()
    command = [str(BIN / "dagster"), "code-server", "start", "-m", module, "-h", "127.0.0.1", "-p", str(port)]
    log = tmp_path / "code-server.log"
    with started(command, env, log) as process:
        client = DagsterGrpcClient(port=port, host="127.0.0.1")

        def loaded() -> bool:
            if process.poll() is not None:
                return True
            with contextlib.suppress(Exception):
                # The proxy answers before its code has loaded; the definitions answer after.
                return bool(client.ping("ready")) and client.list_repositories() is not None
            return False

        assert wait_for(loaded, START) and process.poll() is None, log.read_text(errors="replace")[-3000:]
        yield process, {**env, "DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": str(port)}


def launch(env: dict[str, str], job: str, partition: str) -> None:
    """`dagster job launch` through the workspace file, as an operator would."""
    command = [str(BIN / "dagster"), "job", "launch", "-w", str(WORKSPACE), "-l", "coordinator", "-j", job, "--tags", json.dumps({"dagster/partition": partition})]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=START)
    assert result.returncode == 0, result.stdout + result.stderr


def finished_run(instance: dg.DagsterInstance, job: str) -> dg.DagsterRun:
    def done() -> bool:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job))
        return bool(runs) and runs[0].is_finished

    assert wait_for(done, START), [r.status for r in instance.get_runs()]
    [run] = instance.get_runs(filters=dg.RunsFilter(job_name=job))
    return run


def event_pids(instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType) -> set[int]:
    records = instance.get_records_for_run(run_id, of_type=event_type).records
    return {r.event_log_entry.dagster_event.pid for r in records}


def hour_rows(home: Path) -> int:
    return int(Lake(home).query(f"SELECT count(*) AS n FROM feed_records WHERE strftime(ts_event, '%Y-%m-%d-%H:00') = '{PARTITION}'")["n"][0])


# ---- the code location as a gRPC server ----------------------------------------------------------


def test_a_run_launched_through_the_code_server_runs_under_it(tmp_path, monkeypatch):
    from dagster._core.storage.tags import GRPC_INFO_TAG
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    from coordinator_dagster.code_location import defs

    env = node_env(tmp_path)
    (tmp_path / "dagster_home" / "dagster.yaml").write_text(NODE_YAML.read_text())
    with code_server(tmp_path, env, "coordinator_dagster.code_location") as (server, env):
        with opened(env["DAGSTER_HOME"]) as instance:
            # No webserver, no daemon: this process loads the definitions from the server.
            for key in ("DAGSTER_CODE_SERVER_HOST", "DAGSTER_CODE_SERVER_PORT"):
                monkeypatch.setenv(key, env[key])
            with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as workspace:
                location = workspace.create_request_context().get_code_location("coordinator")
                [repository] = location.get_repositories().values()
                served_jobs = {job.name for job in repository.get_all_jobs()}
                served_assets = {node.asset_key for node in repository.get_asset_node_snaps()}
            assert {"ingest_job", "predict_job", "score_job", "checkpoint_job"} <= served_jobs
            assert served_assets == {key for key in defs.resolve_asset_graph().get_all_asset_keys()}

            with TreeWatch(server.pid) as under_server:
                launch(env, "ingest_job", PARTITION)
                run = finished_run(instance, "ingest_job")
            assert run.status == dg.DagsterRunStatus.SUCCESS, (tmp_path / "code-server.log").read_text(errors="replace")[-3000:]
            [run_pid] = event_pids(instance, run.run_id, dg.DagsterEventType.RUN_START)
            # The run's process was a descendant of the code server, not of this process or the CLI.
            assert run_pid in under_server.seen and run_pid != os.getpid()
            assert str(json.loads(run.tags[GRPC_INFO_TAG])["port"]) == env["DAGSTER_CODE_SERVER_PORT"]
            assert instance.get_materialized_partitions(dg.AssetKey("feed_records")) == {PARTITION}
    assert hour_rows(tmp_path / "home") > 0


# ---- steps on celery workers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    from tests.redis_server import find_binary, redis_server

    binary = find_binary()
    if binary is None:
        reason = "no redis-server binary (/usr/bin/redis-server): scripts/install_redis.sh installs Debian's redis-server"
        print(f"\nSKIPPED: {reason}")
        pytest.skip(reason)
    with redis_server(binary) as url:
        yield url


def test_a_partition_materializes_on_celery_workers_with_the_instance_on_postgresql(tmp_path, pg_url, redis_url, monkeypatch):
    from celery import Celery

    broker, backend = f"{redis_url}/0", f"{redis_url}/1"
    env = node_env(tmp_path, DAGSTER_PG_URL=pg_url, DAGSTER_CELERY_BROKER_URL=broker, DAGSTER_CELERY_BACKEND_URL=backend)
    (tmp_path / "dagster_home" / "dagster.yaml").write_text(NODE_YAML.read_text() + PG_BLOCK.read_text())
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)  # this process opens the same instance
    names = ("w1", "w2")

    def logs() -> str:
        files = [tmp_path / f"worker-{name}.log" for name in names] + [tmp_path / "code-server.log"]
        return "\n".join(f"--- {f.name}\n" + f.read_text(errors="replace")[-1500:] for f in files if f.exists())

    with contextlib.ExitStack() as stack:
        # Two workers as an operator starts them (deploy/celery.yaml); the solo pool runs each task
        # in the worker process itself.
        workers = [
            stack.enter_context(started(
                [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(CELERY_YAML), "-n", name, "--", "--pool=solo"],
                env, tmp_path / f"worker-{name}.log",
            ))
            for name in names
        ]
        app = Celery(broker=broker, backend=backend)

        def both_answer() -> bool:
            replies = app.control.ping(timeout=1.0)
            return {host.split("@")[0] for reply in replies for host in reply} >= set(names)

        assert wait_for(both_answer, START), logs()
        worker_pids = set().union(*(descendants(worker.pid) for worker in workers))

        with opened(env["DAGSTER_HOME"]) as instance:
            with code_server(tmp_path, env, "coordinator_dagster.code_location_celery") as (server, served):
                with TreeWatch(server.pid) as under_server:
                    launch(served, "ingest_job", PARTITION)
                    run = finished_run(instance, "ingest_job")
            assert run.status == dg.DagsterRunStatus.SUCCESS, logs()

            [run_pid] = event_pids(instance, run.run_id, dg.DagsterEventType.RUN_START)
            step_pids = event_pids(instance, run.run_id, dg.DagsterEventType.STEP_START)
            # The run's process (under the code server) handed the step to a worker, which ran it.
            assert run_pid in under_server.seen
            assert step_pids and step_pids <= worker_pids and run_pid not in step_pids and os.getpid() not in step_pids
            engine = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
            hosts = {
                data.metadata["Celery worker"].value
                for data in (r.event_log_entry.dagster_event.engine_event_data for r in engine)
                if "Celery worker" in data.metadata
            }
            assert hosts and {host.split("@")[0] for host in hosts} <= set(names)

    # Another process's view of the PostgreSQL instance: the partition's materialization.
    with opened(env["DAGSTER_HOME"]) as other:
        [event] = other.fetch_materializations(dg.AssetKey("feed_records"), limit=10).records
        assert event.partition_key == PARTITION and event.run_id == run.run_id
    assert hour_rows(tmp_path / "home") > 0
