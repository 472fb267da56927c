"""Back up and restore a node: its lake (COORDINATOR_HOME) and its Dagster instance (DAGSTER_HOME).

A backup is one gzip'd tar archive: `home/…` (the lake), `dagster_home/…` (the instance) and
`MANIFEST.json` with every file's size and SHA-256. It can be taken while the node runs:

- Lake files are only ever replaced whole by an atomic rename, so each file read is a complete
  version of itself (an open file keeps its version even if it is replaced meanwhile).
- SQLite databases (Dagster's runs, event logs, schedules and sensor cursors) are copied with
  SQLite's online backup API, which gives a consistent snapshot even mid-write; a raw file copy
  could catch half a transaction.
- The instance is copied before the lake. Every materialization the copied instance records has
  therefore written its files before the lake is read, so the restored UI never shows data the
  restored lake lacks; the lake may hold a little more, which the next runs treat as done.
- Skipped: temporary files of atomic writes, lock files, logs, pid files, SQLite's WAL/journal
  side files (their content is inside the online copy), and the DuckDB catalog, which only
  holds views with absolute paths and is rebuilt after a restore (`coordinator catalog`).

A restore reads and verifies the whole archive into staging folders next to the targets before
it touches them; a corrupt or truncated archive, a checksum mismatch or an unexpected member
stops it with the targets unchanged. Targets must be empty or missing unless `force` is given.

One module (about 400 lines) because backup and restore are two halves of one archive format:
the manifest, the member names and the checks are shared, and splitting them would spread that
format over files that must change together.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from coordinator_dagster.lake.durable import replace_durably

FORMAT = "coordinator-backup"
FORMAT_VERSION = 1
MANIFEST = "MANIFEST.json"
HOME_PREFIX = "home"
DAGSTER_PREFIX = "dagster_home"
SQLITE_HEADER = b"SQLite format 3\x00"
_CHUNK = 1 << 20

# Relative to COORDINATOR_HOME: rebuilt or runtime-only state.
_HOME_SKIP_TOP = {"logs", "run", "coordinator.duckdb", "coordinator.duckdb.wal", "catalog.json"}
# Relative to DAGSTER_HOME: daemon and webserver scratch space.
_DAGSTER_SKIP_TOP = {"logs", ".logs_queue", "tmp"}
_SKIP_DIRS = {".locks", "__pycache__"}
_SKIP_SUFFIXES = (".tmp", ".lock", "-wal", "-shm", "-journal", ".pid")


class BackupError(RuntimeError):
    """The backup or restore cannot proceed; the message says why and what to do."""


@dataclass(frozen=True)
class BackupResult:
    archive: Path
    files: int
    bytes: int
    sqlite_databases: int
    seconds: float


@dataclass(frozen=True)
class RestoreResult:
    home: Path
    dagster_home: Path | None
    files: int
    bytes: int
    seconds: float


def _skipped(relative: PurePosixPath, top_level: set[str]) -> bool:
    if relative.parts[0] in top_level:
        return True
    if any(part in _SKIP_DIRS for part in relative.parts[:-1]):
        return True
    name = relative.name
    if name.startswith(".tmp_dagster_home_") or name.endswith(_SKIP_SUFFIXES):
        return True
    return False


def _walk(root: Path, top_level: set[str], exclude: Path | None) -> Iterator[tuple[PurePosixPath, Path]]:
    """(relative path, absolute path) of the files to back up under `root`, sorted."""
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        if exclude is not None:
            dirnames[:] = [d for d in dirnames if (here / d).resolve() != exclude]
        dirnames.sort()
        for filename in sorted(filenames):
            path = here / filename
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if path.is_symlink() or not path.is_file() or _skipped(relative, top_level):
                continue
            yield relative, path


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def _sqlite_snapshot(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database through the online backup API."""
    src = sqlite3.connect(f"file:{urllib.parse.quote(str(source))}?mode=ro", uri=True, timeout=60)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


class _HashingReader(io.RawIOBase):
    """Reads `size` bytes from a file while hashing them (tarfile reads exactly the size)."""

    def __init__(self, handle: BinaryIO):
        self._handle = handle
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.digest.update(data)
        return data


def _add_file(tar: tarfile.TarFile, member: str, path: Path, mtime: float | None = None) -> tuple[str, int] | None:
    """Add one file; (sha256, size), or None if it vanished since it was listed."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None  # replaced by a rename or pruned between listing and reading
    with handle:
        stat = os.fstat(handle.fileno())
        info = tarfile.TarInfo(member)
        info.size = stat.st_size
        info.mtime = int(mtime if mtime is not None else stat.st_mtime)
        info.mode = 0o644
        reader = _HashingReader(handle)
        tar.addfile(info, reader)
        return reader.digest.hexdigest(), stat.st_size


def backup(archive: Path, home: Path, dagster_home: Path | None = None) -> BackupResult:
    """Write a checksummed archive of `home` and `dagster_home` to `archive` (replaced atomically)."""
    began = time.perf_counter()
    home = Path(home).expanduser().resolve()
    if not (home / "lake").is_dir():
        raise BackupError(f"{home} holds no lake (no {home / 'lake'}); is COORDINATOR_HOME right?")
    dagster_home = Path(dagster_home).expanduser().resolve() if dagster_home else None
    if dagster_home is not None and not dagster_home.is_dir():
        dagster_home = None  # no instance yet (the demo without DAGSTER_HOME): the lake alone
    archive = Path(archive).expanduser().resolve()
    if archive.is_relative_to(home) or (dagster_home and archive.is_relative_to(dagster_home)):
        raise BackupError(f"{archive} is inside a folder being backed up; write the archive elsewhere")
    if not archive.parent.is_dir():
        raise BackupError(f"{archive.parent} is not an existing folder")

    nested = None
    if dagster_home is not None and dagster_home.is_relative_to(home):
        nested = dagster_home.relative_to(home).as_posix()
    files: dict[str, dict[str, object]] = {}
    total = sqlite_count = 0
    tmp = archive.parent / f".{archive.name}.{os.getpid()}.tmp"
    try:
        with tempfile.TemporaryDirectory(prefix="coordinator-backup-") as scratch, tarfile.open(
            tmp, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT
        ) as tar:
            # The instance first: see the module docstring for why the order matters.
            if dagster_home is not None:
                for i, (relative, path) in enumerate(_walk(dagster_home, _DAGSTER_SKIP_TOP, None)):
                    member = f"{DAGSTER_PREFIX}/{relative}"
                    if _is_sqlite(path):
                        copy = Path(scratch) / f"{i}.db"
                        try:
                            _sqlite_snapshot(path, copy)
                        except sqlite3.Error as exc:
                            raise BackupError(f"cannot copy the SQLite database {path}: {exc}") from exc
                        added = _add_file(tar, member, copy, mtime=path.stat().st_mtime)
                        copy.unlink()
                        sqlite_count += 1
                    else:
                        added = _add_file(tar, member, path)
                    if added:
                        files[member] = {"sha256": added[0], "size": added[1]}
                        total += added[1]
            for relative, path in _walk(home, _HOME_SKIP_TOP, dagster_home if nested else None):
                member = f"{HOME_PREFIX}/{relative}"
                added = _add_file(tar, member, path)
                if added:
                    files[member] = {"sha256": added[0], "size": added[1]}
                    total += added[1]
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "coordinator_home": str(home),
                "dagster_home": str(dagster_home) if dagster_home else None,
                "dagster_home_in_home": nested,
                "files": files,
            }
            data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
        replace_durably(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupResult(archive, len(files), total, sqlite_count, time.perf_counter() - began)


def _member_target(name: str) -> tuple[str, PurePosixPath]:
    """(prefix, relative path) of an archive member, refusing anything that could escape."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or len(path.parts) < 2 or path.parts[0] not in (HOME_PREFIX, DAGSTER_PREFIX):
        raise BackupError(f"unexpected member {name!r} in the archive: not a coordinator backup, refusing to restore it")
    return path.parts[0], PurePosixPath(*path.parts[1:])


def _corrupt(archive: Path, exc: BaseException) -> BackupError:
    return BackupError(f"{archive} is corrupt or truncated ({type(exc).__name__}: {exc}); nothing was restored")


def _check_stream(archive: Path) -> None:
    """Read the whole gzip stream: a damaged one fails its CRC or ends early (tar alone can
    mistake a damaged header for the end of the archive)."""
    with gzip.open(archive, "rb") as stream:
        while stream.read(_CHUNK):
            pass


def read_manifest(archive: Path) -> dict:
    """The archive's manifest, after checking that it is a coordinator backup."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            try:
                member = tar.getmember(MANIFEST)
            except KeyError:
                _check_stream(archive)
                raise BackupError(f"{archive} has no {MANIFEST}: not a coordinator backup") from None
            handle = tar.extractfile(member)
            manifest = json.loads(handle.read()) if handle else None
    except BackupError:
        raise
    except FileNotFoundError:
        raise BackupError(f"{archive} does not exist") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        raise _corrupt(archive, exc) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{archive}: {MANIFEST} is not a coordinator backup manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{archive}: backup format version {manifest.get('format_version')} is not supported (expected {FORMAT_VERSION})")
    return manifest


def _usable_target(path: Path, force: bool, label: str) -> None:
    if path.exists() and not path.is_dir():
        raise BackupError(f"{label} {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise BackupError(f"{label} {path} is not empty; restore into an empty folder, or pass --force to replace it")


def _node_running(home: Path) -> int | None:
    """The pid of a `make run` using this home, if one is alive."""
    pid_file = home / "run" / "run.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def restore(archive: Path, home: Path, dagster_home: Path | None = None, force: bool = False) -> RestoreResult:
    """Restore `archive` into `home` (and `dagster_home`); verified in full before anything moves.

    `dagster_home` defaults to where the archive had it: inside `home` if it was there, else
    `home/dagster_home`.
    """
    began = time.perf_counter()
    archive = Path(archive).expanduser().resolve()
    manifest = read_manifest(archive)
    home = Path(home).expanduser().resolve()
    has_instance = any(name.startswith(f"{DAGSTER_PREFIX}/") for name in manifest["files"])
    if dagster_home is None:
        dagster_home = home / (manifest.get("dagster_home_in_home") or "dagster_home")
    dagster_home = Path(dagster_home).expanduser().resolve()
    nested = dagster_home.is_relative_to(home)
    if home.is_relative_to(dagster_home):
        raise BackupError(f"COORDINATOR_HOME {home} cannot be inside DAGSTER_HOME {dagster_home}")
    pid = _node_running(home)
    if pid is not None:
        raise BackupError(f"a node is running on {home} (pid {pid}); stop it (make stop) before restoring")
    _usable_target(home, force, "COORDINATOR_HOME")
    if has_instance and not nested:
        _usable_target(dagster_home, force, "DAGSTER_HOME")

    staging: dict[Path, Path] = {}  # target → its staging folder on the same file system

    def stage_for(target: Path) -> Path:
        if target not in staging:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging[target] = Path(tempfile.mkdtemp(prefix=f".{target.name}.restore-", dir=target.parent))
        return staging[target]

    expected = dict(manifest["files"])
    count = total = 0
    try:
        stage_for(home)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    if member.name == MANIFEST:
                        continue
                    prefix, relative = _member_target(member.name)
                    if not member.isfile():
                        raise BackupError(f"unexpected member {member.name!r} (not a regular file); refusing to restore")
                    meta = expected.pop(member.name, None)
                    if meta is None:
                        raise BackupError(f"{member.name} is in the archive but not in its manifest; refusing to restore")
                    if prefix == HOME_PREFIX:
                        destination = staging[home] / relative
                    elif nested:
                        destination = staging[home] / dagster_home.relative_to(home) / relative
                    else:
                        destination = stage_for(dagster_home) / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    digest = hashlib.sha256()
                    size = 0
                    with open(destination, "wb") as out:
                        while chunk := source.read(_CHUNK):
                            digest.update(chunk)
                            size += len(chunk)
                            out.write(chunk)
                    if size != meta["size"] or digest.hexdigest() != meta["sha256"]:
                        raise BackupError(f"{member.name}: checksum mismatch (the archive is damaged); nothing was restored")
                    os.utime(destination, (member.mtime, member.mtime))
                    count += 1
                    total += size
        except BackupError:
            raise
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise _corrupt(archive, exc) from exc
        except OSError as exc:  # the staging side: a full disk, a permission
            raise BackupError(f"cannot write the restored files next to {home}: {exc}; the targets are unchanged") from exc
        if expected:
            raise BackupError(f"{len(expected)} file(s) of the manifest are missing from the archive, e.g. {next(iter(expected))}; nothing was restored")
        _swap_in(staging)
    finally:
        for folder in staging.values():
            shutil.rmtree(folder, ignore_errors=True)
    return RestoreResult(home, dagster_home if has_instance else None, count, total, time.perf_counter() - began)


def _swap_in(staging: dict[Path, Path]) -> None:
    """Move every staging folder onto its target; on failure put the old targets back."""
    done: list[tuple[Path, Path | None]] = []
    try:
        for target, folder in staging.items():
            previous = None
            if target.exists():
                previous = target.parent / f".{target.name}.replaced-{os.getpid()}-{time.time_ns()}"
                target.rename(previous)
            done.append((target, previous))
            folder.rename(target)
    except OSError:
        for target, previous in reversed(done):
            shutil.rmtree(target, ignore_errors=True)
            if previous is not None:
                previous.rename(target)
        raise
    for _, previous in done:
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
