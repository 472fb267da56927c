"""Partition locks: one writer at a time for a read-modify-write of one lake partition.

On one machine an advisory file lock under the lake's `.locks/` folder is enough. A lake shared by
several machines (object storage) needs a lock every machine sees: with DAGSTER_PG_URL set (the
Dagster instance on PostgreSQL, which every host of such a node already reaches) the lock is a
PostgreSQL session advisory lock on a 64-bit number derived from the lake and the partition.
Writers of different partitions never wait on each other either way.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

PartitionLock = Callable[[str, "str | None"], contextlib.AbstractContextManager[None]]


def lock_name(key: str | None) -> str:
    return (key or "all").replace(":", "")


def file_lock(root: Path) -> PartitionLock:
    """Advisory file locks under `root/.locks/`: they serialize the writers of one machine."""

    @contextlib.contextmanager
    def lock(name: str, key: str | None) -> Iterator[None]:
        lock_dir = root / ".locks" / name
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{lock_name(key)}.lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    return lock


def advisory_key(namespace: str, name: str, key: str | None) -> int:
    """A signed 64-bit number for `pg_advisory_lock`, the same on every host for one partition."""
    digest = hashlib.blake2b(f"{namespace}\0{name}\0{lock_name(key)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def postgres_lock(url: str, namespace: str) -> PartitionLock:
    """Session advisory locks in the PostgreSQL database at `url` (Dagster's URL form accepted).

    One connection per lock held: advisory locks are re-entrant within a session, so two threads
    sharing a connection would both get the lock. Closing the connection releases the lock even
    if the process dies while holding it."""
    dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)

    @contextlib.contextmanager
    def lock(name: str, key: str | None) -> Iterator[None]:
        import psycopg2  # dagster-postgres' driver; imported only where the lock is used

        number = advisory_key(namespace, name, key)
        con = psycopg2.connect(dsn)
        try:
            con.autocommit = True
            with con.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", (number,))
            try:
                yield
            finally:
                with con.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (number,))
        finally:
            con.close()

    return lock


def partition_lock_for(root: Path, environ: Mapping[str, str] | None = None) -> PartitionLock:
    """PostgreSQL advisory locks when DAGSTER_PG_URL is set, file locks under `root` otherwise.

    The locks' namespace is LAKE_URL when set (every host names the shared lake alike), else the
    lake's local folder."""
    env = os.environ if environ is None else environ
    url = env.get("DAGSTER_PG_URL", "").strip()
    if url:
        return postgres_lock(url, env.get("LAKE_URL", "").strip() or str(root))
    return file_lock(root)
