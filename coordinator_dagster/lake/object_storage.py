"""The lake on S3-compatible object storage: the bucket is the lake, the home's `lake/` folder is
this host's copy of it, which DuckDB and polars read.

S3 has no rename, so a partition is committed in two steps: its bytes go to an immutable object
under a new name (`<prefix>objects/<path>/<time>-<random>`), then a small pointer object
(`<prefix>current/<path>`, whose body is that name) is written last. A PUT replaces an object
whole, so a reader that follows a pointer gets one complete version, old or new, never part of
one; committing a partition again (an idempotent re-materialization) writes a new version and
moves the pointer; removing a partition deletes its pointer. Versions no pointer names are
deleted by later commits of the same partition once they are `GRACE_SECONDS` old, so a reader
that has just read a pointer can still fetch what it names.

The local copy: each file has a dot-named side file (`.data.parquet.version`, invisible to the
lake's globs) holding the version it was downloaded or written as. Bringing files up to date
reads their pointers (one GET each, or one LIST per folder, whose ETags skip unchanged pointers)
and downloads only versions it does not have, each by temp file and atomic rename, so a local
reader also never sees half a file. Local files without a side file were not written through
the store and are left alone. Folder listings are re-done at most every `LAKE_SYNC_SECONDS`
(default 1 s) per process: how far another host's writes may lag in what this one lists; a read
of named partitions (`sync_files`, what read-modify-writes use) always asks the store.

Talks S3 through boto3 (DuckDB reads the local copy: its httpfs extension must match duckdb's
exact version, and a registered fsspec filesystem would put a round trip under every query).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coordinator_dagster.lake.durable import replace_durably
from coordinator_dagster.lake.locks import partition_lock_for

GRACE_SECONDS = 300.0
DEFAULT_SYNC_SECONDS = 1.0
SIDE_SUFFIX = ".version"
DOWNLOAD_ATTEMPTS = 4
PARALLEL_REQUESTS = 8
_SHARED: dict[tuple, "ObjectStorage"] = {}
_SHARED_LOCK = threading.Lock()


def parse_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> (`bucket`, `some/prefix/`); the prefix may be empty."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"LAKE_URL={url!r}: expected s3://bucket/prefix")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def side_file(path: Path) -> Path:
    return path.parent / f".{path.name}{SIDE_SUFFIX}"


def _local_version(path: Path) -> str | None:
    try:
        return side_file(path).read_text()
    except FileNotFoundError:
        return None


def _not_found(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class ObjectStorage:
    """`LakeStorage` on an S3 bucket, with this host's copy under `root`."""

    def __init__(self, root: Path, client, bucket: str, prefix: str, environ: Mapping[str, str] | None = None, sync_seconds: float = DEFAULT_SYNC_SECONDS):
        self.root = root
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.sync_seconds = sync_seconds
        self.description = f"s3://{bucket}/{prefix}"
        # Segments and folder swaps live on one disk; here an hour is always one committed object.
        self.segments = False
        env = dict(os.environ if environ is None else environ)
        env.setdefault("LAKE_URL", self.description)
        self._lock = partition_lock_for(root, env)
        self._synced: dict[str, float] = {}  # relative folder -> when it was last listed
        self._sync_lock = threading.Lock()

    @classmethod
    def from_environment(cls, root: Path, url: str, environ: Mapping[str, str]) -> "ObjectStorage":
        """One storage per lake folder and settings in a process: assets build a `Lake` per call,
        and a boto3 client costs tens of milliseconds to make (it is thread-safe to share); the
        shared object also keeps the times its folders were last listed."""
        names = ("LAKE_S3_ENDPOINT_URL", "LAKE_S3_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "LAKE_SYNC_SECONDS", "DAGSTER_PG_URL")
        key = (str(root), url, *(environ.get(n, "") for n in names))
        with _SHARED_LOCK:
            found = _SHARED.get(key)
            if found is None:
                found = _SHARED[key] = cls._create(root, url, environ)
            return found

    @classmethod
    def _create(cls, root: Path, url: str, environ: Mapping[str, str]) -> "ObjectStorage":
        import boto3
        from botocore.config import Config

        bucket, prefix = parse_url(url)
        endpoint = environ.get("LAKE_S3_ENDPOINT_URL", "").strip() or None
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=environ.get("LAKE_S3_REGION", "").strip() or environ.get("AWS_REGION") or "us-east-1",
            aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
            # Path-style addressing: what MinIO, Ceph and most S3-compatible servers expect.
            config=Config(s3={"addressing_style": "path"} if endpoint else {}, retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
        )
        seconds = environ.get("LAKE_SYNC_SECONDS", "").strip()
        return cls(root, client, bucket, prefix, environ, float(seconds) if seconds else DEFAULT_SYNC_SECONDS)

    # ---- names ---------------------------------------------------------------------------------

    def _relative(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    def _pointer(self, relative: str) -> str:
        return f"{self.prefix}current/{relative}"

    def _versions(self, relative: str) -> str:
        return f"{self.prefix}objects/{relative}/"

    # ---- writing -------------------------------------------------------------------------------

    def commit(self, tmp: Path, path: Path) -> None:
        relative = self._relative(path)
        version = f"{self._versions(relative)}{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        self.client.upload_file(str(tmp), self.bucket, version)
        self.client.put_object(Bucket=self.bucket, Key=self._pointer(relative), Body=version.encode())  # the commit
        self._place(tmp, path, version)
        self._collect(relative, keep=version)

    def _place(self, tmp: Path, path: Path, version: str) -> None:
        """Put a committed version into the local copy: data first, then its side file."""
        replace_durably(tmp, path)
        side = side_file(path)
        side_tmp = side.with_name(f"{side.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        side_tmp.write_text(version)
        os.replace(side_tmp, side)

    def _collect(self, relative: str, keep: str) -> None:
        """Delete versions of `relative` that no pointer names and that are past the grace time."""
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=GRACE_SECONDS)
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._versions(relative))
        old = [{"Key": o["Key"]} for o in listed.get("Contents", []) if o["Key"] != keep and o["LastModified"] < cutoff]
        if old:
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": old, "Quiet": True})

    def remove(self, path: Path) -> bool:
        relative = self._relative(path)
        existed = self._read_pointer(relative) is not None
        if existed:
            self.client.delete_object(Bucket=self.bucket, Key=self._pointer(relative))
        return self._drop_local(path) or existed

    def remove_tree(self, folder: Path) -> None:
        keys = [{"Key": self._pointer(relative)} for relative in self._list_pointers(self._relative(folder))]
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
        for local in self._local_files(folder):
            self._drop_local(local)

    def lock(self, name: str, key: str | None):
        return self._lock(name, key)

    # ---- the local copy ------------------------------------------------------------------------

    def sync_files(self, paths: Iterable[Path]) -> None:
        paths = [Path(p) for p in paths]
        if len(paths) <= 1:
            for path in paths:
                self._sync_one(path, self._read_pointer(self._relative(path)))
            return
        # An hour range is many small GETs: in parallel, each a round trip of its own.
        with ThreadPoolExecutor(min(PARALLEL_REQUESTS, len(paths))) as pool:
            list(pool.map(lambda path: self._sync_one(path, self._read_pointer(self._relative(path))), paths))

    def sync_folder(self, folder: Path) -> None:
        relative = self._relative(folder)
        now = time.monotonic()
        if self._fresh(relative, now):
            return
        with self._sync_lock:
            if self._fresh(relative, now):
                return
            listed = self._list_pointers(relative)
            for local in self._local_files(folder):
                if self._relative(local) not in listed:
                    self._drop_local(local)
            changed = []
            for name, etag in listed.items():
                path = self.root / name
                have = _local_version(path)
                if have is not None and hashlib.md5(have.encode()).hexdigest() == etag and path.is_file():
                    continue  # a simple PUT's ETag is the MD5 of its body: the pointer is unchanged
                changed.append(path)
            self.sync_files(changed)
            self._synced[relative] = now

    def _fresh(self, relative: str, now: float) -> bool:
        """Whether `relative` or a folder above it was listed within the last `sync_seconds`."""
        parts = relative.split("/") if relative not in ("", ".") else []
        candidates = ["."] + ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(now - self._synced.get(c, float("-inf")) < self.sync_seconds for c in candidates)

    def _sync_one(self, path: Path, version: str | None) -> None:
        for _ in range(DOWNLOAD_ATTEMPTS):
            if version is None:
                if _local_version(path) is not None:
                    self._drop_local(path)
                return
            if _local_version(path) == version and path.is_file():
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
            try:
                self.client.download_file(self.bucket, version, str(tmp))
                self._place(tmp, path, version)
                return
            except Exception as error:  # noqa: BLE001 - only a version collected meanwhile is retried
                if not _not_found(error):
                    raise
                version = self._read_pointer(self._relative(path))  # moved on: follow it
            finally:
                tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{path}: its version kept disappearing while it was downloaded")

    def _read_pointer(self, relative: str) -> str | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._pointer(relative))["Body"].read().decode()
        except Exception as error:  # noqa: BLE001
            if _not_found(error):
                return None
            raise

    def _list_pointers(self, relative: str) -> dict[str, str]:
        """Every pointer under a local folder: relative path -> ETag (without quotes)."""
        base = self._pointer("" if relative in ("", ".") else relative.rstrip("/") + "/")
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            for item in page.get("Contents", []):
                found[item["Key"][len(self.prefix) + len("current/") :]] = item["ETag"].strip('"')
        return found

    def _local_files(self, folder: Path) -> list[Path]:
        """Local files under `folder` that came from the store (they have a side file)."""
        found = []
        for directory, _, names in os.walk(folder):
            for name in names:
                if name.startswith(".") and name.endswith(SIDE_SUFFIX):
                    found.append(Path(directory) / name[1 : -len(SIDE_SUFFIX)])
        return found

    def _drop_local(self, path: Path) -> bool:
        existed = path.is_file()
        path.unlink(missing_ok=True)
        side_file(path).unlink(missing_ok=True)
        return existed
