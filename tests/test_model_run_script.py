"""`make run` (scripts/run.sh) with the real model runner: started beside the API and dagster dev,
reachable through the MODEL_RUNNER_URL it exports, and stopped with everything else."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.model_runner_process import group_members
from tests.process_support import free_port as _free_port
from tests.process_support import wait_for as _wait_for

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "scripts" / "launch.py"

# Stands in for `dagster dev` and the API: records its pid and the runner URL it was given.
STAND_IN = textwrap.dedent(
    """
    import os, sys, time
    with open(sys.argv[1], "w") as fh:
        fh.write(f"{os.getpid()} {os.environ.get('MODEL_RUNNER_URL', '')} {os.environ.get('MODEL_RUNNER_TOKEN', '')}")
    time.sleep(600)
    """
)


def _models(url: str, home: Path) -> dict | None:
    token_file = home / "model_runner.token"
    if not token_file.exists():
        return None
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    try:
        return {m["model_id"]: m for m in httpx.get(url + "/models", headers=headers, timeout=5).json()["models"]}
    except httpx.HTTPError:
        return None


def _start(tmp_path: Path, stop_with: str):
    fake = tmp_path / "stand_in.py"
    fake.write_text(STAND_IN)
    home = tmp_path / "home"
    port = _free_port()
    env = {
        **os.environ,
        "RUN_SKIP_BOOTSTRAP": "1",
        "COORDINATOR_HOME": str(home),
        "DAGSTER_PORT": str(_free_port()),
        "API_PORT": str(_free_port()),
        "MODEL_RUNNER_PORT": str(port),
        "RUN_API_CMD": f"{sys.executable} {fake} {tmp_path / 'api.txt'}",
        "RUN_DAGSTER_CMD": f"{sys.executable} {fake} {tmp_path / 'dagster.txt'}",
        "FEED_LIVE": "0",  # the feed listener has tests of its own (tests/test_scripts.py, test_stream_*)
    }
    for var in ("DAGSTER_HOME", "MODEL_RUNNER_URL", "MODEL_RUNNER_TOKEN", "MODELS_MANIFEST"):
        env.pop(var, None)
    proc = subprocess.Popen([sys.executable, str(LAUNCH), "bash", str(ROOT / "scripts" / "run.sh")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, home, f"http://127.0.0.1:{port}", env


def _check_running(tmp_path: Path, proc, home: Path, url: str) -> list[int]:
    dagster_file = tmp_path / "dagster.txt"
    assert _wait_for(lambda: dagster_file.exists() and dagster_file.read_text(), 120), "dagster stand-in did not start"
    _, exported, token = dagster_file.read_text().split()
    assert exported == url  # the code location is pointed at the runner
    # ... with the runner's token, generated into the home, readable by this user only.
    token_file = home / "model_runner.token"
    assert token == token_file.read_text().strip() and len(token) >= 40
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert _wait_for(lambda: _models(url, home) is not None, 120), (home / "logs" / "models.log").read_text()
    models = _models(url, home)
    # The three example models, each in a worker process of its own (not the runner's process).
    runner_pid = int((home / "run" / "models.pid").read_text())
    assert set(models) == {"momentum", "mean-reversion", "contrarian"}
    assert _wait_for(lambda: all(m["pid"] for m in _models(url, home).values()), 120)
    pids = [m["pid"] for m in _models(url, home).values()]
    assert runner_pid not in pids and len(set(pids)) == 3
    assert "model runner listening on" in (home / "logs" / "models.log").read_text()
    return [runner_pid, *pids]


def _gone(pids: list[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z" for pid in pids)


def test_run_sh_starts_the_runner_and_stops_it_on_sigterm(tmp_path):
    proc, home, url, _ = _start(tmp_path, "sigterm")
    pids: list[int] = []
    try:
        pids = _check_running(tmp_path, proc, home, url)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert f"model runner {url}" in out and "stopping dagster dev, the report API, the model runner" in out
        assert _wait_for(lambda: _gone(pids), 120), f"left running: {pids}"
        assert not (home / "run" / "models.pid").exists()
    finally:
        _kill(proc, pids)


def test_stop_sh_stops_the_runner_too(tmp_path):
    proc, home, url, env = _start(tmp_path, "stop.sh")
    pids: list[int] = []
    try:
        pids = _check_running(tmp_path, proc, home, url)
        os.kill(proc.pid, signal.SIGKILL)  # run.sh gone: stop.sh must find the groups itself
        proc.wait(timeout=10)
        result = subprocess.run(["bash", str(ROOT / "scripts" / "stop.sh")], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "stopping models" in result.stdout
        assert _wait_for(lambda: _gone(pids), 120), f"left running: {pids}"
    finally:
        _kill(proc, pids)


def test_run_sh_refuses_a_busy_runner_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {**os.environ, "RUN_SKIP_BOOTSTRAP": "1", "COORDINATOR_HOME": str(tmp_path), "DAGSTER_PORT": str(_free_port()),
               "API_PORT": str(_free_port()), "MODEL_RUNNER_PORT": str(busy.getsockname()[1])}
        env.pop("MODEL_RUNNER_URL", None)
        result = subprocess.run(["bash", str(ROOT / "scripts" / "run.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "model runner port" in result.stderr and "MODEL_RUNNER_PORT" in result.stderr


def _kill(proc, pids: list[int]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    for pid in pids:
        for target in (pid, *group_members(pid)):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
