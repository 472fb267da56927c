"""A throwaway PostgreSQL server for tests and benchmarks: the machine's own binaries (Debian's
`postgresql-15`, installed by scripts/install_postgres.sh), a data folder under /tmp, listening on
127.0.0.1 only, stopped and removed at the end. Each caller gets a fresh database of its own.

`initdb` and `postgres` refuse to run as root: when the tests run as root (CI, this machine), the
data folder belongs to `nobody` and both run under its uid through `setpriv`, which execs (so the
process we hold is the server itself and a signal reaches it directly).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.process_support import free_port

NOBODY = 65534  # Debian's nobody / nogroup


def find_binaries() -> Path | None:
    """The newest `/usr/lib/postgresql/<major>/bin` with initdb and postgres, else the PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and (Path(initdb).parent / "postgres").exists() else None


class PostgresServer:
    """One running server; `database()` creates a fresh database and returns its URL."""

    def __init__(self, bin_dir: Path, folder: Path, port: int, process: subprocess.Popen):
        self.bin_dir, self.folder, self.port, self.process = bin_dir, folder, port, process
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def database(self, prefix: str = "t") -> str:
        """A new, empty database: one per test, so no test sees another's runs or events."""
        import psycopg2

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *command]


@contextlib.contextmanager
def postgres_server(bin_dir: Path, timeout: float = 120.0) -> Iterator[PostgresServer]:
    """Initialise a cluster in a temporary folder and run it on a free loopback port until the
    block ends. fsync is off: the data is thrown away, and it keeps a loaded machine's disk free."""
    folder = Path(tempfile.mkdtemp(prefix="coordinator-pg-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        for path in (folder, sockets):
            os.chown(path, NOBODY, NOBODY)
    log = folder / "server.log"
    process = None
    try:
        subprocess.run(
            _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]),
            check=True, capture_output=True, timeout=timeout, cwd=folder,
        )
        port = free_port()
        with open(log, "wb") as out:
            process = subprocess.Popen(
                _as_server_user([
                    str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(sockets),
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
                ]),
                stdout=out, stderr=subprocess.STDOUT, cwd=folder,
            )
        ready = [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-q"]
        deadline = time.monotonic() + timeout
        while subprocess.run(ready, check=False).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{port}: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield PostgresServer(bin_dir, folder, port, process)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, no checkpoint wait
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)
