"""The sandbox around model workers (bubblewrap), tried by hostile models through the real
`coordinator models serve`: no secrets, no network, no other process, nothing left behind."""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import pytest

from coordinator_dagster.models.sandbox import Sandbox, choose_sandbox, python_dirs
from tests.model_runner_process import HOSTILE, entry, group_members, model_runner, payload, write_manifest
from tests.process_support import wait_for

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

ROOT = Path(__file__).resolve().parents[1]


def _marked(marker: str) -> list[int]:
    """Live processes running `sleep <marker>`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == b"sleep\0" + marker.encode() + b"\0":
                stat = (cmdline.parent / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_a_sandboxed_model_reads_no_secret_and_sees_no_other_process(tmp_path):
    secret = "secret-" + secrets.token_hex(8)
    lake = tmp_path / "lake" / "predictions"
    lake.mkdir(parents=True)
    (lake / "data.parquet").write_text("the node's lake")
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("snoop", f"{HOSTILE}:Snooper", 0)])
    with model_runner(tmp_path, manifest, API_KEY=secret, PYTH_API_KEY=secret) as runner:
        runner.wait_loaded()
        assert runner.get("/health")["sandbox"] is True
        node = [runner.proc.pid, os.getpid(), *group_members(runner.proc.pid)]  # the runner, this test
        snoop = {
            "files": [str(lake / "data.parquet"), str(runner.log), str(ROOT / "pyproject.toml"), "/etc/hostname", f"/proc/{runner.proc.pid}/environ"],
            "pids": node,
            "secret": secret,
        }
        [outcomes] = runner.predict(payload(snoop=snoop))
        answer = __import__("json").loads(outcomes["snoop"]["output"])
        assert outcomes["snoop"]["status"] == "PENDING", outcomes
        assert answer["found"] == [] and answer["value"] == 0.0
        assert answer["uid"] == 65534
        # Its own PID namespace: bwrap's init, the worker, and nothing of the node.
        assert len(answer["visible_pids"]) <= 3 and not set(answer["visible_pids"]) & set(node)
        # The runner's token is no more readable than the rest.
        snoop["secret"] = runner.token
        [again] = runner.predict(payload(snoop=snoop))
        assert again["snoop"]["value"] == 0.0, again


def test_a_sandboxed_model_has_no_network(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("net", f"{HOSTILE}:Networker", 0)])
    with listener, model_runner(tmp_path, manifest, timeout=5.0) as runner:
        runner.wait_loaded()
        runner_port = int(runner.url.rsplit(":", 1)[1])
        targets = [["127.0.0.1", listener.getsockname()[1]], ["127.0.0.1", runner_port], ["1.1.1.1", 53]]
        [outcomes] = runner.predict(payload(connect=targets))
        assert outcomes["net"]["status"] == "PENDING" and outcomes["net"]["value"] == 0.0, outcomes
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the test's listener


@pytest.mark.parametrize(
    ("mode", "escape"),
    [
        ("required", True),  # a double-forked child in a session of its own: the PID namespace ends it
        ("off", False),  # unsandboxed, a plain child: its worker's process group is killed
    ],
)
def test_no_process_a_model_starts_outlives_its_worker_or_the_service(tmp_path, mode, escape):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("counter", f"{HOSTILE}:Counter", 0), entry("forker", f"{HOSTILE}:Forker", 1)])
    died, stays = (f"{7000 + secrets.randbelow(1000)}.{secrets.randbelow(10**6)}" for _ in range(2))
    with model_runner(tmp_path, manifest, timeout=3.0, MODEL_SANDBOX=mode) as runner:
        runner.warm_up()
        # The worker leaves a child behind and exits: the child goes with it.
        [outcomes] = runner.predict(payload(hostile=True, marker=died, escape=escape))
        assert outcomes["forker"]["status"] == "ABSENT" and outcomes["forker"]["failed_reason"].startswith("worker exited with code 5")
        assert outcomes["counter"]["status"] == "PENDING"
        assert wait_for(lambda: not _marked(died), 10), f"left running: {_marked(died)}"
        # A worker that lives on keeps its child until the service stops.
        runner.wait_loaded()
        [outcomes] = runner.predict(payload(hostile=True, marker=stays, escape=escape, stay=True))
        assert outcomes["forker"]["status"] == "PENDING"
        assert wait_for(lambda: bool(_marked(stays)), 10)
        assert runner.get("/health")["sandbox"] is (mode == "required")
    assert wait_for(lambda: not _marked(stays), 10), f"left running after the service stopped: {_marked(stays)}"


def test_a_model_over_its_cpu_time_is_stopped_and_restarted(tmp_path):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("counter", f"{HOSTILE}:Counter", 0), entry("spinner", f"{HOSTILE}:Spinner", 1)])
    # A per-model timeout far above the CPU limit: the limit, not the timeout, stops it.
    with model_runner(tmp_path, manifest, timeout=60.0, MODEL_CPU_SECONDS="1") as runner:
        runner.warm_up()
        [outcomes] = runner.predict(payload(hostile=True))
        assert outcomes["spinner"]["status"] == "ABSENT"
        assert outcomes["spinner"]["failed_reason"].startswith(("worker died (SIGXCPU)", "worker died (SIGKILL)")), outcomes["spinner"]
        assert outcomes["counter"]["status"] == "PENDING"
        assert runner.models()["spinner"]["consecutive_failures"] == 1


def test_the_sandbox_binds_only_the_python_installation_the_package_and_the_model():
    sandbox = Sandbox(True, bwrap="/usr/bin/bwrap", python=str(ROOT / ".venv" / "bin" / "python"))
    command = sandbox.wrap(["python", "-m", "x"], "/srv/models/alice")
    bound = [command[i + 2] for i, word in enumerate(command) if word in ("--ro-bind", "--ro-bind-try")]
    assert bound == ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", *python_dirs(sandbox.python), str(ROOT / "coordinator_dagster"), "/srv/models/alice"]
    assert str(ROOT) not in bound and str(ROOT / ".venv") in bound
    assert "--bind" not in command and "--unshare-all" in command and "--die-with-parent" in command
    assert command[-3:] == ["python", "-m", "x"]


def test_a_python_under_tmp_still_runs_in_the_sandbox(tmp_path):
    """The scratch /tmp must not hide what is bound below it: a checkout (and its .venv) cloned
    under /tmp, as a CI job may, runs its workers like any other."""
    import subprocess
    import sys

    assert str(tmp_path).startswith("/tmp/")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    sandbox = Sandbox(True, bwrap="/usr/bin/bwrap", python=str(venv / "bin" / "python"))
    model = tmp_path / "models"
    model.mkdir()
    (model / "note.txt").write_text("seen")
    command = sandbox.wrap([sandbox.python, "-c", f"print(open('{model / 'note.txt'}').read())"], str(model))
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "seen"


def test_model_sandbox_modes(monkeypatch):
    off = choose_sandbox("off")
    assert not off.enabled and off.wrap(["python"]) == ["python"]
    with pytest.raises(ValueError, match="MODEL_SANDBOX must be one of off, auto, required"):
        choose_sandbox("maybe")
    # Without bwrap on the PATH: `required` refuses, `auto` warns loudly and runs unsandboxed.
    from coordinator_dagster.models import sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module.shutil, "which", lambda name: None)
    with pytest.raises(sandbox_module.SandboxUnavailable, match="bubblewrap package"):
        choose_sandbox("required")
    auto = choose_sandbox()
    assert not auto.enabled and "not installed" in auto.reason


def test_serve_refuses_to_start_when_a_required_sandbox_is_impossible(tmp_path):
    import subprocess

    from tests.model_runner_process import COORDINATOR

    env = {**os.environ, "MODEL_SANDBOX": "required", "PATH": str(tmp_path), "MODEL_RUNNER_TOKEN": "t"}
    result = subprocess.run([str(COORDINATOR), "models", "serve", "--port", "0"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and "MODEL_SANDBOX=required but models cannot be sandboxed here" in result.stderr, result.stderr
