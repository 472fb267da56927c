"""Models that misbehave on purpose, for the runner service's tests (each one a tracker class).

Each misbehaves only from the round whose payload asks for it (`payload["hostile"]` true) or
always, as its docstring says, so a test can check that the next round works again.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from coordinator_dagster.models.tracker import TrackerBase


class Counter(TrackerBase):
    """Deterministic and stateful: answers how many rounds it has seen plus the last close."""

    def __init__(self) -> None:
        super().__init__()
        self.rounds = 0

    def tick(self, data: dict[str, Any]) -> None:
        super().tick(data)
        self.rounds += 1

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        closes = self.closes(subject)
        return {"value": self.rounds + (closes[-1] if closes else 0.0)}


class _Hostile(Counter):
    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> Any:
        if self.hostile:
            return self.misbehave()
        return super().predict(subject, resolve_horizon_seconds, step_seconds)

    def tick(self, data: dict[str, Any]) -> None:
        super().tick(data)
        self.hostile = bool(data.get("hostile"))

    def misbehave(self) -> Any:
        raise NotImplementedError


class Sleeper(_Hostile):
    """Sleeps far past any timeout."""

    def misbehave(self) -> Any:
        time.sleep(3600)


class Raiser(_Hostile):
    def misbehave(self) -> Any:
        raise ZeroDivisionError("hostile division")


class Stringer(_Hostile):
    def misbehave(self) -> Any:
        return "up, definitely up"


class NaNer(_Hostile):
    def misbehave(self) -> Any:
        return {"value": float("nan")}


class Huge(_Hostile):
    """A 50 MB answer."""

    def misbehave(self) -> Any:
        return {"value": 1.0, "blob": "x" * (50 * 1024 * 1024)}


class Printer(_Hostile):
    """Prints to stdout (and stderr) forever, never answering."""

    def misbehave(self) -> Any:
        line = "spam " * 200 + "\n"
        while True:
            sys.stdout.write(line)
            sys.stderr.write(line)


class Hog(_Hostile):
    """Allocates memory until the OS (the worker's address-space limit) stops it."""

    def misbehave(self) -> Any:
        hoard = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))


class Exiter(_Hostile):
    def misbehave(self) -> Any:
        os._exit(7)


class AlwaysExits(Counter):
    """Dies on every call: the runner must mark it unhealthy rather than restart it forever."""

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> Any:
        os._exit(9)


class BrokenImport:
    """Fails while loading (its constructor raises)."""

    def __init__(self) -> None:
        raise ImportError("missing_dependency is not installed")


class Forger(_Hostile):
    """Writes a 50 MB frame straight onto the worker's channel, past the worker's own size check."""

    def misbehave(self) -> Any:
        import socket
        import struct

        fd = int(sys.argv[sys.argv.index("--fd") + 1])
        channel = socket.socket(fileno=os.dup(fd))
        size = 50 * 1024 * 1024
        channel.sendall(struct.pack(">I", size) + b"x" * size)
        time.sleep(3600)


class EnvSnooper(Counter):
    """Answers 1.0 if it can read a secret from the node's environment, else 0.0."""

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        return {"value": 1.0 if os.environ.get("PYTH_API_KEY") else 0.0}


def _channel() -> Any:
    """The worker's own channel to the supervisor (a model can always find it)."""
    import socket

    fd = int(sys.argv[sys.argv.index("--fd") + 1])
    return socket.socket(fileno=os.dup(fd))


def _write_frame(body: bytes) -> None:
    import struct

    _channel().sendall(struct.pack(">I", len(body)) + body)


class DeepNester(_Hostile):
    """Answers a 15,000-deep nested list (it raises its own recursion limit so it can encode it)."""

    def misbehave(self) -> Any:
        sys.setrecursionlimit(100_000)
        deep: list = [1.0]
        for _ in range(15_000):
            deep = [deep]
        return {"value": 1.0, "deep": deep}


class ListForger(_Hostile):
    """Writes a frame that is a JSON list, then answers normally."""

    def misbehave(self) -> Any:
        _write_frame(b"[1, 2, 3]")
        return {"value": 1.0}


class MsForger(_Hostile):
    """Writes a well-formed answer for the current request whose "ms" is a string."""

    def misbehave(self) -> Any:
        import json

        # The supervisor numbers requests from 1; this tracker has seen one request per round.
        _write_frame(json.dumps({"type": "answer", "seq": self.rounds, "answer": '{"value": 1.0}', "ms": "x"}).encode())
        time.sleep(3600)


class DeepFrameForger(_Hostile):
    """Writes a small frame nested 15,000 levels deep."""

    def misbehave(self) -> Any:
        _write_frame(b"[" * 15_000 + b"]" * 15_000)
        time.sleep(3600)


class SlowLoader(Counter):
    """Takes ten minutes to load (its constructor sleeps), then behaves."""

    def __init__(self) -> None:
        time.sleep(600)
        super().__init__()


class Snooper(Counter):
    """Tries to read what the payload's `snoop` names (files, other processes' environments), to
    see other processes and to signal them; answers what it managed as `found` (empty: nothing)."""

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        targets = self.last.get("snoop") or {}
        found = []
        for path in [*targets.get("files", []), *(f"/proc/{pid}/environ" for pid in targets.get("pids", []))]:
            try:
                with open(path, "rb") as handle:
                    found.append(f"read {path}: {handle.read(200)!r}")
            except OSError:
                pass
        for pid in targets.get("pids", []):
            try:
                os.kill(pid, 0)
                found.append(f"can signal {pid}")
            except OSError:
                pass
        secret = targets.get("secret", "")
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    if secret and secret.encode() in handle.read():
                        found.append(f"secret in /proc/{pid}/environ")
            except OSError:
                pass
        visible = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        return {"value": float(len(found)), "found": found, "visible_pids": visible, "uid": os.getuid()}

    def tick(self, data: dict[str, Any]) -> None:
        super().tick(data)
        self.last = data


class Networker(Counter):
    """Tries to connect to each (host, port) of the payload's `connect`; answers which worked."""

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> dict[str, Any]:
        import socket

        reached = []
        for host, port in self.last.get("connect") or []:
            try:
                with socket.create_connection((host, port), timeout=1):
                    reached.append(f"{host}:{port}")
            except OSError:
                pass
        return {"value": float(len(reached)), "reached": reached}

    def tick(self, data: dict[str, Any]) -> None:
        super().tick(data)
        self.last = data


class Forker(_Hostile):
    """Leaves a process behind (`sleep <payload marker>`): double-forked into a session of its
    own when the payload says `escape`, else a plain child; then its worker exits, or, with
    `stay`, answers normally."""

    def tick(self, data: dict[str, Any]) -> None:
        super().tick(data)
        self.last = data

    def misbehave(self) -> Any:
        marker, escape = str(self.last["marker"]), bool(self.last.get("escape"))
        if os.fork() == 0:
            if escape:
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
            os.execv("/bin/sleep", ["sleep", marker])
        if self.last.get("stay"):
            return {"value": 1.0}
        time.sleep(0.2)
        os._exit(5)


class Spinner(_Hostile):
    """Burns CPU forever."""

    def misbehave(self) -> Any:
        while True:
            pass
