"""Which lake tables may have changed since they were last looked at, from the kernel's file
events (Linux inotify) instead of a `stat` of every file on every request.

What belongs here: `TableWatch`, the inotify watch over some tables' folder trees, and nothing
that reads a file.

A long-lived reader (the report API) must not answer from a copy older than the files, so it
compares the files' identities (`memory.table_identity`: a `stat` per file, a listing per
folder) before each use. On a two-core machine that comparison costs more than the rest of a
small request. The kernel queues an inotify event inside the very system call that renames,
creates or removes a file, before the call returns; so once a writer's commit has returned, a
reader that drains the queue (one non-blocking `read`) sees it. A table without an event since
its identity was last taken still has that identity, and its files need not be looked at.

Events only tell "look again": the identities stay the truth, so a spurious event (a temporary
file, a compaction's scratch folder) costs one comparison, never a wrong answer. Where events
cannot be had (not Linux, no inotify instance or watch left, a lake on object storage whose
files arrive through a sync), `TableWatch.create` returns None, or `watches()` is False for a
table, and the caller compares identities on every use as before. A network file system only
reports this host's own writes, so callers still compare every `recheck` seconds.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
import threading
from pathlib import Path

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = 0o2000000
# Every change of a folder's entries or of a file's content or metadata.
MASK = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of name
_ROOT = ""  # the tag of the lake root's own watch (tables' folders appearing)


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The interpreter's own symbols include the C library's (find_library would run ldconfig).
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        return libc
    except (OSError, AttributeError):
        return None


class TableWatch:
    """inotify watches on the folder tree of each of some tables under one lake root. `drain()`
    returns the tables with an event since the previous drain (every table after a queue
    overflow). Thread-safe."""

    def __init__(self, libc, fd: int, root: Path, folders: dict[str, str]):
        self._libc = libc
        self._fd = fd
        self.root = root
        self._folders = folders  # table -> its top folder's name under root
        self._by_folder: dict[str, list[str]] = {}
        for table, folder in folders.items():
            self._by_folder.setdefault(folder, []).append(table)
        self._wds: dict[int, tuple[str, str]] = {}  # watch -> (folder name under root or _ROOT, path)
        self._failed: set[str] = set()  # folders some watch could not be added for
        self._lock = threading.Lock()
        self._add(_ROOT, str(root), recursive=False)
        for folder in self._by_folder:
            self._add_tree(folder, str(root / folder))

    @classmethod
    def create(cls, root: Path, folders: dict[str, str]) -> TableWatch | None:
        """A watch over `folders` (table -> folder name under `root`), or None without inotify."""
        libc = _libc()
        if libc is None:
            return None
        try:
            # A node's API may start before anything was written: the root is where writes go.
            os.makedirs(root, exist_ok=True)
        except OSError:
            return None
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            return None
        watch = cls(libc, fd, root, folders)
        if _ROOT in watch._failed:
            watch.close()
            return None
        return watch

    def watches(self, table: str) -> bool:
        """Whether every folder of `table` is watched (else its events may be missed)."""
        folder = self._folders.get(table)
        return folder is not None and folder not in self._failed

    def _add(self, folder: str, path: str, recursive: bool = True) -> None:
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(path), MASK | IN_ONLYDIR)
        if wd < 0:
            # Gone already (a scratch folder): nothing to watch. Out of watches: give up on it.
            if ctypes.get_errno() not in (2, 20):  # ENOENT, ENOTDIR
                self._failed.add(folder)
            return
        self._wds[wd] = (folder, path)
        if recursive:
            try:
                children = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
            except OSError:
                return
            for child in children:
                self._add(folder, child)

    def _add_tree(self, folder: str, path: str) -> None:
        if os.path.isdir(path):
            self._add(folder, path)

    def drain(self) -> dict[str, set[str]] | None:
        """Tables with an event since the last drain, each with the folders the events were in
        (its top folder for the table's folder itself appearing or going); None: unknown (the
        queue overflowed), every table must be looked at again."""
        changed: dict[str, set[str]] = {}
        overflow = False
        with self._lock:
            while True:
                try:
                    data = os.read(self._fd, 65536)
                except BlockingIOError:
                    break
                offset = 0
                while offset + _EVENT.size <= len(data):
                    wd, mask, _, length = _EVENT.unpack_from(data, offset)
                    name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                    offset += _EVENT.size + length
                    if mask & IN_Q_OVERFLOW:
                        overflow = True
                        continue
                    found = self._wds.get(wd)
                    if found is None:
                        continue
                    folder, path = found
                    if mask & IN_IGNORED:
                        del self._wds[wd]
                    child = os.path.join(path, os.fsdecode(name)) if name else path
                    if folder == _ROOT:
                        entry = os.fsdecode(name)
                        if entry in self._by_folder:
                            for table in self._by_folder[entry]:
                                changed.setdefault(table, set()).add(child)
                            if mask & (IN_CREATE | IN_MOVED_TO):
                                self._add_tree(entry, child)
                        continue
                    for table in self._by_folder[folder]:
                        changed.setdefault(table, set()).add(path)
                    if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                        # Watched before its files are looked at: what lands in it later is seen.
                        self._add(folder, child)
            if overflow:
                # Folders created meanwhile may have no watch yet.
                for folder in self._by_folder:
                    self._add_tree(folder, str(self.root / folder))
        return None if overflow else changed

    def close(self) -> None:
        os.close(self._fd)

