"""One model's worker process, and the framing both ends of its channel use.

    python -m coordinator_dagster.models.worker --fd N --entrypoint mod:Tracker [--path DIR]
        [--memory-mb M] [--cpu-seconds S] [--max-processes P] [--max-output-bytes B] [--parent PID]

The supervisor (`models.service`) starts one worker per model and talks to it over a socket it
hands down as file descriptor N, never over stdout: a model may print anything, forever, and
that must not corrupt or block the protocol (the supervisor drains and caps stdout/stderr
separately). Messages are frames: a 4-byte big-endian length, then that many bytes of JSON.

    worker -> {"type": "ready"} | {"type": "load_error", "error": ...}     once, after loading
    supervisor -> {"type": "predict", "seq": n, "payload": {...}, "horizon": h, "step": s}
                | {"type": "features", "seq": n, "features": {...}}          a tournament sample:
                                                                            `model.predict(features)`
                | {"type": "density", "seq": n, "tick": {...} | null,       a density tracker: tick,
                   "asset": a | null, "horizon": h, "steps": [...]}         then `predict_all`
    worker -> {"type": "answer", "seq": n, "answer": "<json>", "ms": t}
            | {"type": "error", "seq": n, "error": "..."}                  the model raised
            | {"type": "oversized", "seq": n, "bytes": b}                  answer over the cap

The resource limits are set before the model is imported and cannot be raised by it (soft =
hard): address space (RLIMIT_AS), so a model that allocates without bound gets MemoryError (or
dies) inside its own process only; CPU seconds over the worker's life (RLIMIT_CPU: past it the
worker is killed and restarted); processes and threads (RLIMIT_NPROC, in the sandbox only: outside
it the count is the node user's); no core files. The sandbox around the process is `sandbox`. This module
imports only the standard library, so a worker starts in well under a second.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time
import traceback
from typing import Any

from coordinator_dagster.models.reference_models import REFERENCE_BASE_CLASSNAME

HEADER = struct.Struct(">I")


class ChannelClosed(Exception):
    """The other end closed the channel (for the supervisor: the worker died)."""


def send_frame(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message, allow_nan=True, separators=(",", ":")).encode()
    sock.sendall(HEADER.pack(len(body)) + body)


def recv_exact(sock: socket.socket, size: int, deadline: float | None = None, sink: bool = False) -> bytes:
    """`size` bytes (or, with `sink`, read and drop them); TimeoutError past `deadline`."""
    chunks = []
    left = size
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(left, 1 << 20))
        except socket.timeout:
            raise TimeoutError from None
        if not chunk:
            raise ChannelClosed
        left -= len(chunk)
        if not sink:
            chunks.append(chunk)
    return b"".join(chunks)


def _answer_json(answer: Any) -> str:
    if hasattr(answer, "model_dump"):  # a pydantic model: send its fields
        answer = answer.model_dump()
    return json.dumps(answer, allow_nan=True)


def _limit_resources(megabytes: int, cpu_seconds: int, max_processes: int) -> None:
    import resource

    limits = [(resource.RLIMIT_CORE, 0)]
    if megabytes > 0:
        limits.append((resource.RLIMIT_AS, megabytes * 1024 * 1024))
    if cpu_seconds > 0:
        limits.append((resource.RLIMIT_CPU, cpu_seconds))
    if max_processes > 0:
        limits.append((resource.RLIMIT_NPROC, max_processes))
    for which, value in limits:
        resource.setrlimit(which, (value, value))


def _die_with_parent(parent: int) -> None:
    """End this worker when the supervisor is gone, however it went: the worker is in a session
    of its own, so the supervisor's process group does not include it, and a model stuck in a
    loop never reads the closed channel. (Linux's PR_SET_PDEATHSIG fires when the *thread* that
    started the worker ends, and the supervisor starts workers from short-lived threads.)"""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _load(entrypoint: str, path: str, base_classname: str, feed_shape: str) -> Any:
    if path:
        sys.path.insert(0, path)
    from coordinator_dagster.models.reference_models import load_model

    return load_model(entrypoint, base_classname, feed_shape)


def _density(model: Any, request: dict[str, Any]) -> Any:
    """A density tracker's tick (`{asset: [[unix seconds, price], ...]}`), then, if the request
    names an asset, its densities for the round (`predict_all`, or `predict` step by step)."""
    if request.get("tick") is not None:
        model.tick({asset: [tuple(point) for point in points] for asset, points in request["tick"].items()})
    if request.get("asset") is None:
        return None
    asset, horizon, steps = request["asset"], request["horizon"], request["steps"]
    if hasattr(model, "predict_all"):
        return model.predict_all(asset, horizon, steps)
    return {step: model.predict(asset, horizon, step) for step in steps if step <= horizon}


def serve(
    sock: socket.socket, entrypoint: str, path: str, max_output_bytes: int,
    base_classname: str = REFERENCE_BASE_CLASSNAME, feed_shape: str = "candle",
) -> int:
    try:
        model = _load(entrypoint, path, base_classname, feed_shape)
    except BaseException as exc:  # noqa: BLE001 - whatever loading does, report it and stop
        send_frame(sock, {"type": "load_error", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return 3
    send_frame(sock, {"type": "ready"})
    while True:
        try:
            (size,) = HEADER.unpack(recv_exact(sock, HEADER.size))
            request = json.loads(recv_exact(sock, size))
        except ChannelClosed:
            return 0
        seq = request.get("seq")
        started = time.perf_counter()
        try:
            if request.get("type") == "features":  # a tournament model answers one sample at a time
                encoded = _answer_json(model.predict(request["features"]))
            elif request.get("type") == "density":  # a density tracker (models.density_workers)
                encoded = _answer_json(_density(model, request))
            else:
                payload = request["payload"]
                model.tick(payload)
                encoded = _answer_json(model.predict(payload["subject"], request["horizon"], request["step"]))
        except Exception as exc:  # noqa: BLE001 - the model's fault, reported as FAILED
            tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            send_frame(sock, {"type": "error", "seq": seq, "error": f"model raised {tail}"[:1000]})
            continue
        elapsed = (time.perf_counter() - started) * 1000.0
        if len(encoded) > max_output_bytes:
            send_frame(sock, {"type": "oversized", "seq": seq, "bytes": len(encoded), "ms": elapsed})
            continue
        send_frame(sock, {"type": "answer", "seq": seq, "answer": encoded, "ms": elapsed})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coordinator_dagster.models.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--entrypoint", required=True)
    parser.add_argument("--path", default="")
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--cpu-seconds", type=int, default=0)
    parser.add_argument("--max-processes", type=int, default=0)
    parser.add_argument("--max-output-bytes", type=int, default=64 * 1024)
    parser.add_argument("--parent", type=int, default=0)
    parser.add_argument("--base-classname", default=REFERENCE_BASE_CLASSNAME)
    parser.add_argument("--feed-shape", default="candle")
    args = parser.parse_args(argv)
    if args.parent:
        _die_with_parent(args.parent)
    sock = socket.socket(fileno=args.fd)
    _limit_resources(args.memory_mb, args.cpu_seconds, args.max_processes)
    try:
        return serve(sock, args.entrypoint, args.path, args.max_output_bytes, args.base_classname, args.feed_shape)
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the supervisor went away


if __name__ == "__main__":
    sys.exit(main())
