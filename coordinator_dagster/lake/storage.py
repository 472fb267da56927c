"""Where the lake's files are kept: the one storage interface the lake writes, removes, refreshes
and locks through, its local-disk implementation, and the choice between it and object storage.

Every reader of the lake (DuckDB views, polars, the API's file identities) reads files under the
home's `lake/` folder. On local disk those files are the lake. With `LAKE_URL=s3://bucket/prefix`
the bucket is the lake and `lake/` is this host's copy of it, brought up to date before a read
(`object_storage.py`); every host writes to the bucket, so runs, listeners and API replicas on
different machines share one lake. Partition locks come from `locks.py` (PostgreSQL advisory
locks when DAGSTER_PG_URL is set, file locks otherwise).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from coordinator_dagster.lake.durable import replace_durably
from coordinator_dagster.lake.locks import partition_lock_for


class LakeStorage(Protocol):
    """What the lake asks of the place its files are kept. `path`s are under the lake's root."""

    description: str
    # Whether the files under the lake's root are the lake itself, so an hour may grow by
    # segment files and be compacted by a folder swap (lake/segments.py). Object storage: no.
    segments: bool

    def commit(self, tmp: Path, path: Path) -> None:
        """Make the finished file `tmp` the partition at `path`: readers see the old or the new
        one, never part of one; committing the same content again is harmless."""

    def remove(self, path: Path) -> bool:
        """Delete one partition; whether it existed."""

    def remove_tree(self, folder: Path) -> None:
        """Delete every file under `folder` (a pruned scoring version)."""

    def sync_files(self, paths: Iterable[Path]) -> None:
        """Bring these local files up to the store (no-op on local disk)."""

    def sync_folder(self, folder: Path) -> None:
        """Bring every local file under `folder` up to the store (no-op on local disk)."""

    def lock(self, name: str, key: str | None) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock of one partition for a read-modify-write."""


class LocalDisk:
    """The lake on this machine's disk: a commit is a durable rename."""

    description = "local disk"
    segments = True

    def __init__(self, root: Path, environ: Mapping[str, str] | None = None):
        self.root = root
        self._lock = partition_lock_for(root, environ)

    def commit(self, tmp: Path, path: Path) -> None:
        replace_durably(tmp, path)

    def remove(self, path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def remove_tree(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def sync_files(self, paths: Iterable[Path]) -> None:
        return None

    def sync_folder(self, folder: Path) -> None:
        return None

    def lock(self, name: str, key: str | None) -> contextlib.AbstractContextManager[None]:
        return self._lock(name, key)


def storage_for(root: Path, environ: Mapping[str, str] | None = None) -> LakeStorage:
    """The storage `LAKE_URL` names (unset or empty: local disk under `root`)."""
    env = os.environ if environ is None else environ
    url = env.get("LAKE_URL", "").strip()
    if not url:
        return LocalDisk(root, env)
    if url.startswith("s3://"):
        # Imported here: boto3 costs a quarter of a second, which a local lake never pays.
        from coordinator_dagster.lake.object_storage import ObjectStorage

        return ObjectStorage.from_environment(root, url, env)
    raise ValueError(f"LAKE_URL={url!r}: expected s3://bucket/prefix (or unset for the local disk)")
