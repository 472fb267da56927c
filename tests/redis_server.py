"""A throwaway Redis server for tests: Debian's /usr/bin/redis-server (scripts/install_redis.sh),
listening on 127.0.0.1 only, nothing saved to disk, stopped at the end."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.process_support import free_port, wait_for


def find_binary() -> Path | None:
    found = Path("/usr/bin/redis-server")
    if found.exists():
        return found
    which = shutil.which("redis-server")
    return Path(which) if which else None


@contextlib.contextmanager
def redis_server(binary: Path, timeout: float = 120.0) -> Iterator[str]:
    """Run a server on a free loopback port until the block ends; yields its redis:// base URL."""
    import redis

    folder = Path(tempfile.mkdtemp(prefix="coordinator-redis-"))
    port = free_port()
    log = folder / "server.log"
    with open(log, "wb") as out:
        # No RDB snapshots, no append-only file: the broker's queue lives for one test session.
        process = subprocess.Popen(
            [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder), "--protected-mode", "yes"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)

        def answers() -> bool:
            with contextlib.suppress(redis.exceptions.ConnectionError):
                return bool(client.ping())
            return process.poll() is not None

        if not wait_for(answers, timeout) or process.poll() is not None:
            raise RuntimeError(f"redis-server did not start on 127.0.0.1:{port}: {log.read_text(errors='replace')[-2000:]}")
        client.close()
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
