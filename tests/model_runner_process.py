"""The real model runner service (`coordinator models serve`) in a subprocess, for tests.

Started through scripts/launch.py (default signal handling, a process group of its own) on a
free port (port 0, read back from --port-file), and stopped with its whole group.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "scripts" / "launch.py"
COORDINATOR = ROOT / ".venv" / "bin" / "coordinator"


HOSTILE = "hostile_models"  # tests/hostile_models.py, as a model folder of its own (`hostile_folder`)
_hostile_folder: list[Path] = []


def hostile_folder() -> Path:
    """A folder holding a copy of tests/hostile_models.py: a sandboxed worker sees its model's
    folder, never the checkout."""
    if not _hostile_folder:
        folder = Path(tempfile.mkdtemp(prefix="hostile-models-"))
        shutil.copy(ROOT / "tests" / "hostile_models.py", folder / "hostile_models.py")
        folder.chmod(0o755)
        atexit.register(shutil.rmtree, folder, True)
        _hostile_folder.append(folder)
    return _hostile_folder[0]


def entry(model_id: str, entrypoint: str, index: int = 0, **extra) -> dict:
    if entrypoint.startswith(HOSTILE + ":"):
        extra.setdefault("path", str(hostile_folder()))
    return {"model_id": model_id, "name": model_id.title(), "cruncher": f"c-{model_id}", "cruncher_index": index, "entrypoint": entrypoint, **extra}


def write_manifest(path: Path, entries: list[dict]) -> None:
    """Write atomically, and move the mtime on so a rewrite within the same tick is noticed."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries))
    stamp = max(time.time_ns(), before + 1_000_000_000)
    os.utime(tmp, ns=(stamp, stamp))
    tmp.replace(path)


def payload(subject: str = "BTC", closes: tuple[float, ...] = (100.0, 101.0), **extra) -> dict:
    candles = [{"ts": f"2026-11-20T10:{m:02d}:00+00:00", "close": c} for m, c in enumerate(closes)]
    return {"subject": subject, "round_ts": "2026-11-20T10:30:00+00:00", "step_seconds": 60, "horizon_seconds": 60, "candles": candles, **extra}


@dataclass
class Runner:
    url: str
    proc: subprocess.Popen
    log: Path
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str) -> dict:
        response = httpx.get(self.url + path, headers=self.headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def predict(self, *payloads: dict, session: str = "live") -> list[dict[str, dict]]:
        """Each input's outcomes by model id."""
        body = {"session": session, "inputs": [{"payload": p, "horizon_seconds": 60, "step_seconds": 60} for p in payloads]}
        response = httpx.post(self.url + "/predict", json=body, headers=self.headers, timeout=120)
        assert response.status_code == 200, response.text
        return [{o["model_id"]: o for o in outcomes} for outcomes in response.json()["results"]]

    def models(self) -> dict[str, dict]:
        return {m["model_id"]: m for m in self.get("/models")["models"]}

    def wait_loaded(self, timeout: float = 120.0) -> None:
        """Until no worker is still importing its model (`loading` in GET /models)."""
        deadline = time.monotonic() + timeout
        while any(m["loading"] for m in self.models().values()):
            assert time.monotonic() < deadline, f"models still loading after {timeout} s: {self.models()}"
            time.sleep(0.05)

    def warm_up(self, timeout: float = 120.0) -> dict[str, dict]:
        """The first round once every model has loaded (a worker still loading is ABSENT, by
        design, and sees no round), repeated if a model is loading again by then."""
        deadline = time.monotonic() + timeout
        while True:
            self.wait_loaded(max(0.1, deadline - time.monotonic()))
            [outcomes] = self.predict(payload())
            if all(not (o["failed_reason"] or "").startswith("worker starting") for o in outcomes.values()):
                return outcomes
            assert time.monotonic() < deadline, f"models still loading after {timeout} s: {outcomes}"
            time.sleep(0.2)


@contextlib.contextmanager
def model_runner(tmp_path: Path, manifest: Path, timeout: float = 1.0, token: str | None = "generate", **env: str) -> Iterator[Runner]:
    """The service with a fresh API token (`token=None`: started with --insecure-no-token)."""
    port_file = tmp_path / f"runner-{time.monotonic_ns()}.port"
    log = tmp_path / "runner.log"
    if token == "generate":
        token = secrets.token_urlsafe(32)
    environ = {**os.environ, "MODEL_TIMEOUT_SECONDS": str(timeout), "MODEL_SANDBOX": "required", **env}
    environ.pop("MODEL_RUNNER_URL", None)
    environ.pop("MODEL_RUNNER_TOKEN", None)
    if token:
        environ["MODEL_RUNNER_TOKEN"] = token
    command = [sys.executable, str(LAUNCH), str(COORDINATOR), "models", "serve", "--port", "0", "--manifest", str(manifest), "--port-file", str(port_file)]
    if not token:
        command.append("--insecure-no-token")
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, env=environ, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists():
            assert proc.poll() is None, f"runner exited with {proc.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"runner did not start: {log.read_text()}"
            time.sleep(0.05)
        yield Runner(f"http://127.0.0.1:{port_file.read_text().strip()}", proc, log, token)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> int | None:
    """SIGTERM (the runner kills its workers), then SIGKILL for anything left in the group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    code = proc.returncode
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return code


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members
