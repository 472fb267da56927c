"""The supervisor's side of one model worker process: starting it (sandboxed), its channel, and
checking everything it sends.

A `Worker` starts `models.worker` (through the sandbox, `sandbox.py`) with a socket pair as its
channel, drains its stdout/stderr, and reads its frames within bounds: anything that is not a
well-formed answer to the request just sent (forged, oversized, malformed, too deeply nested) is
a `ProtocolError`, after which the pool (`service.py`) replaces the worker. `PoolSettings` are
the per-worker settings every pool shares.
"""

from __future__ import annotations

import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator_dagster.models.reference_models import REFERENCE_BASE_CLASSNAME
from coordinator_dagster.models.runner import MAX_OUTPUT_BYTES, ModelSpec
from coordinator_dagster.models.safe_json import UnsafeJSON, loads_bounded
from coordinator_dagster.models.sandbox import Sandbox
from coordinator_dagster.models.worker import HEADER, ChannelClosed, recv_exact, send_frame

OUTPUT_TAIL_BYTES = 4096  # the last bytes a worker printed, kept for the reason when it dies
READY_POLL_SECONDS = 0.005  # how often a round checks whether a loading model became ready
EXIT_POLL_SECONDS = 0.05  # how often a wait for an answer checks that the worker still lives
WORKER_ENV = ("PATH", "HOME", "LANG", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass(frozen=True)
class PoolSettings:
    timeout_seconds: float = 5.0
    memory_limit_mb: int = 1024
    max_output_bytes: int = MAX_OUTPUT_BYTES
    unhealthy_after: int = 3
    retry_seconds: float = 60.0
    python: str = sys.executable
    cpu_seconds: int = 3600  # CPU time a worker may use in its life (RLIMIT_CPU); 0 = none
    max_processes: int = 64  # processes and threads of a sandboxed worker (RLIMIT_NPROC); 0 = none
    sandbox: Sandbox = Sandbox(False, reason="not configured")
    base_classname: str = REFERENCE_BASE_CLASSNAME  # reference-style models are found by this base
    feed_shape: str = "candle"  # the reference's input shape those models are handed




_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _spawn(start: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    """Run `start` on one long-lived thread. bwrap's --die-with-parent (PR_SET_PDEATHSIG) fires
    when the *thread* that started it ends, and rounds and requests run on short-lived threads."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawn-workers")
    return _spawner.submit(start).result()


def _exit_reason(returncode: int | None, sandboxed: bool = False) -> str:
    if returncode is None:
        return "worker stopped answering"
    if sandboxed and returncode > 128:  # bwrap reports a worker killed by signal N as 128 + N
        returncode = 128 - returncode
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"worker died ({name})"
    return f"worker exited with code {returncode}"


class Worker:
    """One model's process and its channel. Not thread-safe: its slot calls it from one thread."""

    def __init__(self, spec: ModelSpec, settings: PoolSettings):
        self.spec = spec
        self.settings = settings
        self.seq = 0
        self.ready = False
        self.load_error: str | None = None
        self.tail: deque[bytes] = deque()
        self._tail_size = 0
        self._tail_lock = threading.Lock()
        parent, child = socket.socketpair()
        self.sock = parent
        # Model code is untrusted: it sees a minimal environment, not the node's (API keys).
        env = {k: v for k, v in os.environ.items() if k in WORKER_ENV or k.startswith("LC_")}
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        command = [
            settings.python, "-m", "coordinator_dagster.models.worker",
            "--fd", str(child.fileno()),
            "--entrypoint", spec.entrypoint,
            "--memory-mb", str(settings.memory_limit_mb),
            "--cpu-seconds", str(settings.cpu_seconds),
            "--max-output-bytes", str(settings.max_output_bytes),
            "--base-classname", settings.base_classname,
            "--feed-shape", settings.feed_shape,
        ]  # fmt: skip
        if settings.sandbox.enabled:
            # Its PID namespace ends with the worker; bwrap's --die-with-parent ends it with us.
            command += ["--max-processes", str(settings.max_processes)]
        else:
            command += ["--parent", str(os.getpid())]
        if spec.path:
            command += ["--path", spec.path]
        command = settings.sandbox.wrap(command, spec.path)
        try:
            self.proc = _spawn(
                lambda: subprocess.Popen(
                    command,
                    pass_fds=(child.fileno(),),  # bwrap hands it on to the worker, same number
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own group: killing it kills whatever it started
                )
            )
        finally:
            child.close()
        self.started = time.monotonic()
        self._drainer = threading.Thread(target=self._drain, name=f"drain-{spec.model_id}", daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        """Read the worker's stdout/stderr as fast as it writes, keeping only the last bytes."""
        stream = self.proc.stdout
        assert stream is not None
        while True:
            chunk = stream.read1(65536)
            if not chunk:
                break
            with self._tail_lock:
                self.tail.append(chunk)
                self._tail_size += len(chunk)
                while self._tail_size - len(self.tail[0]) >= OUTPUT_TAIL_BYTES:
                    self._tail_size -= len(self.tail.popleft())
        stream.close()

    def output_tail(self, limit: int = 400) -> str:
        with self._tail_lock:
            text = b"".join(self.tail)[-limit:].decode(errors="replace")
        return " ".join(text.split())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def loading(self) -> bool:
        """Still importing its model: not ready, and nothing (ready, load error, exit) to read yet."""
        if self.ready:
            return False
        try:
            return not select.select([self.sock], [], [], 0)[0]
        except (OSError, ValueError):  # closed: the worker is gone
            return False

    def kill(self) -> None:
        # The whole group, even when its leader has exited already: a model's forked children
        # stay in it (unsandboxed; in the sandbox, killing bwrap ends its PID namespace).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            if self.proc.poll() is None:
                self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.sock.close()
        self._drainer.join(timeout=1)

    def death_reason(self) -> str:
        try:
            code = self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        self._drainer.join(timeout=1)
        tail = self.output_tail()
        return _exit_reason(code, self.settings.sandbox.enabled) + (f"; last output: {tail}" if tail else "")

    def _read(self, deadline: float, cap: int) -> dict[str, Any]:
        """The next frame, decoded within bounds; ProtocolError for anything that is not a
        JSON object of at most `cap` bytes (an oversized frame's bytes are read and dropped)."""
        self._wait_readable(deadline)
        (size,) = HEADER.unpack(recv_exact(self.sock, HEADER.size, deadline))
        if size > cap:
            recv_exact(self.sock, size, deadline, sink=True)
            raise ProtocolError(f"oversized: answer frame of {size} bytes, over the {self.settings.max_output_bytes}-byte limit (worker restarted)")
        try:
            message = loads_bounded(recv_exact(self.sock, size, deadline), cap)
        except UnsafeJSON as exc:
            raise ProtocolError(f"protocol error: frame {exc} (worker restarted)") from None
        if not isinstance(message, dict):
            raise ProtocolError(f"protocol error: frame is a JSON {type(message).__name__}, not an object (worker restarted)")
        return message

    def _wait_readable(self, deadline: float) -> None:
        """Until the channel has bytes; ChannelClosed as soon as the worker process has exited,
        even if a process it left behind still holds the channel open (unsandboxed, a child
        inherits it), TimeoutError past `deadline`."""
        while not select.select([self.sock], [], [], min(EXIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))[0]:
            if self.proc.poll() is not None:
                raise ChannelClosed
            if time.monotonic() >= deadline:
                raise TimeoutError

    def wait_ready(self, deadline: float, give_up: threading.Event | None = None) -> None:
        """Raises TimeoutError (past `deadline`, or once `give_up` is set while the model is still
        loading), ChannelClosed, ProtocolError, or RuntimeError (load failure)."""
        if self.ready:
            return
        if self.load_error is not None:
            # Already read by an earlier wait (a session's wait for its models to load): the
            # worker has exited since, but its round still reports why it failed to load.
            raise RuntimeError(f"model failed to load: {self.load_error}")
        while give_up is not None:
            # Poll, so that the wait ends as soon as `give_up` is set; the frame itself is read
            # only once its first byte is there (a timeout mid-frame would lose its start).
            if select.select([self.sock], [], [], min(READY_POLL_SECONDS, max(0.0, deadline - time.monotonic())))[0]:
                break
            if give_up.is_set() or time.monotonic() >= deadline:
                raise TimeoutError
        message = self._read(deadline, cap=1 << 20)
        if message.get("type") == "ready":
            self.ready = True
            return
        if message.get("type") == "load_error":
            self.load_error = str(message.get("error"))[:2000]
            raise RuntimeError(f"model failed to load: {self.load_error}")
        raise ProtocolError(f"protocol error: expected 'ready', got {str(message)[:200]} (worker restarted)")

    def predict(self, payload: dict[str, Any], horizon: int, step: int, deadline: float) -> dict[str, Any]:
        """The worker's checked answer frame; TimeoutError, ChannelClosed or ProtocolError."""
        return self._ask({"type": "predict", "payload": payload, "horizon": horizon, "step": step}, deadline)

    def predict_features(self, features: dict[str, Any], deadline: float) -> dict[str, Any]:
        """A tournament model's checked answer to one sample (`predict(features)`); as `predict`."""
        return self._ask({"type": "features", "features": features}, deadline)

    def density(self, tick: dict[str, Any] | None, asset: str | None, horizon: int, steps: list[int], deadline: float) -> dict[str, Any]:
        """A density tracker's tick and (with `asset`) its answer to one round; as `predict`."""
        return self._ask({"type": "density", "tick": tick, "asset": asset, "horizon": horizon, "steps": steps}, deadline)

    def _ask(self, request: dict[str, Any], deadline: float) -> dict[str, Any]:
        self.seq += 1
        self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            send_frame(self.sock, {**request, "seq": self.seq})
        except socket.timeout:
            raise TimeoutError from None
        except OSError:
            raise ChannelClosed from None
        # The frame cap leaves room for the envelope around a maximal answer.
        return _checked_answer(self._read(deadline, cap=2 * self.settings.max_output_bytes + 1024), self.seq)


class ProtocolError(Exception):
    """A worker sent something that breaks the protocol: its channel cannot be trusted any more."""


_ANSWER_FIELDS = {"answer": ("answer", str), "error": ("error", str), "oversized": ("bytes", int)}


def _checked_answer(message: dict[str, Any], seq: int) -> dict[str, Any]:
    """`message` if it is a well-formed answer to request `seq`, else ProtocolError. Everything
    in it came from model code (a model can write to its channel), so every field is checked."""

    def refuse(problem: str) -> ProtocolError:
        return ProtocolError(f"protocol error: {problem} (worker restarted)")

    kind = message.get("type")
    if kind not in _ANSWER_FIELDS:
        raise refuse(f"unknown frame type {str(kind)[:50]!r}")
    got = message.get("seq")
    if type(got) is not int or got != seq:
        raise refuse(f"answer for request {str(got)[:50]}, expected {seq}")
    key, kind_type = _ANSWER_FIELDS[kind]
    if type(message.get(key)) is not kind_type:
        raise refuse(f"{kind!r} frame without a valid {key!r}")
    ms = message.get("ms")
    if ms is not None and (type(ms) not in (int, float) or not math.isfinite(ms) or ms < 0):
        raise refuse(f"'ms' must be a non-negative number, got {str(ms)[:50]!r}")
    return message
