"""The sandbox around each model worker: bubblewrap (`bwrap`, Debian's `bubblewrap` package).

Why bubblewrap: it is the small, audited tool Flatpak builds on; it puts one command in fresh
kernel namespaces (user, PID, network, mount, IPC, UTS, cgroup) with only the paths it is told to
bind, and nothing else to configure or keep running. A worker started through `wrap` then:

  - runs as uid/gid 65534 ("nobody") in a user namespace of its own, with no capabilities;
  - sees its own PID namespace only (it cannot see or signal the node's processes, and
    `/proc` is its own), and everything it starts dies with it (bwrap's PID 1 ends the
    namespace when the worker ends, and `--die-with-parent` ends it when the runner goes);
  - has no network: a loopback of its own with nothing listening, no route out; it talks to the
    runner only over the socket it inherits;
  - sees, read-only, the Python installation (the interpreter's prefix and the virtual
    environment, FACTS.md), the `coordinator_dagster` package and its own model folder; a
    private tmpfs at /tmp (its HOME and scratch, `MODEL_SCRATCH_MB`); nothing else of the node:
    not the lake, the logs, the checkout, /etc, /root, /home or the node's /proc.

On the host, the sandboxed processes keep the runner's uid (bubblewrap maps 65534 inside to the
uid that started it) without any capability; run the runner as an unprivileged user and that is
what they are on the host too.

`MODEL_SANDBOX` (read when the service is built): `auto` (default) sandboxes when the host can
and otherwise runs workers unsandboxed after a loud warning; `required` refuses to start without
it; `off` never sandboxes. Resource limits (address space, CPU seconds, processes) are rlimits
the worker sets on itself before it imports the model (`models.worker`), in both cases.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("coordinator.models")

MODES = ("off", "auto", "required")
SANDBOX_UID = 65534
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # coordinator_dagster/
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32")  # merged-/usr symlinks included


class SandboxUnavailable(RuntimeError):
    """MODEL_SANDBOX=required, and the host cannot sandbox workers (the message says why)."""


@dataclass(frozen=True)
class Sandbox:
    """How to wrap a worker's command; `enabled` False means workers run unsandboxed."""

    enabled: bool
    bwrap: str = ""
    python: str = sys.executable
    scratch_mb: int = 64
    reason: str = ""  # why it is off, when it is

    def wrap(self, command: list[str], model_path: str = "") -> list[str]:
        """`command` (starting with the Python to run) inside the sandbox, or as is when off."""
        if not self.enabled:
            return command
        binds: list[str] = []
        for folder in SYSTEM_DIRS:
            binds += ["--ro-bind-try", folder, folder]
        for folder in python_dirs(self.python):
            binds += ["--ro-bind", folder, folder]
        binds += ["--ro-bind", str(PACKAGE_DIR), str(PACKAGE_DIR)]
        if model_path:
            binds += ["--ro-bind", model_path, model_path]
        # fmt: off
        return [
            self.bwrap,
            "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "model",
            "--proc", "/proc", "--dev", "/dev",
            # The scratch tmpfs before the binds: a checkout, virtual environment or model folder
            # under /tmp is then bound on top of it instead of hidden by it.
            "--size", str(self.scratch_mb * 1024 * 1024), "--tmpfs", "/tmp",
            *binds,
            "--chdir", "/tmp", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
            "--setenv", "PYTHONPATH", str(PACKAGE_DIR.parent),
            *command,
        ]
        # fmt: on


def python_dirs(python: str) -> list[str]:
    """The folders a Python (often a virtual environment's symlink) needs: the environment
    and the interpreter's installation prefix, both resolved."""
    exe = Path(python)
    folders = []
    if (exe.parent.parent / "pyvenv.cfg").exists():  # a virtual environment: <venv>/bin/python
        folders.append(exe.parent.parent.resolve())
    real = exe.resolve()
    folders.append(real.parent.parent)  # <prefix>/bin/python3.x -> <prefix>
    unique: list[str] = []
    for folder in folders:
        if str(folder) not in unique and not any(str(folder).startswith(s + "/") for s in SYSTEM_DIRS):
            unique.append(str(folder))
    return unique


def probe(sandbox: Sandbox) -> str:
    """'' if a sandboxed worker can start here, else why not (runs one, about 0.1 s)."""
    command = sandbox.wrap([sandbox.python, "-c", "import os, coordinator_dagster.models.worker; assert os.getuid() == %d" % SANDBOX_UID])
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{sandbox.bwrap} did not run: {exc}"
    if result.returncode != 0:
        return f"a test sandbox failed (status {result.returncode}): {' '.join((result.stderr or result.stdout).split())[:300]}"
    return ""


def choose_sandbox(mode: str = "auto", scratch_mb: int = 64, python: str = sys.executable) -> Sandbox:
    """The sandbox MODEL_SANDBOX asks for, checked on this host (SandboxUnavailable if it is
    required and impossible; a loud warning and no sandbox if it is `auto` and impossible)."""
    mode = mode.strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"MODEL_SANDBOX must be one of {', '.join(MODES)}, got {mode!r}")
    if scratch_mb < 1:
        raise ValueError(f"MODEL_SCRATCH_MB must be a positive whole number, got {scratch_mb!r}")
    if mode == "off":
        return Sandbox(False, python=python, reason="MODEL_SANDBOX=off")
    bwrap = shutil.which("bwrap") or ""
    problem = "bwrap (Debian's bubblewrap package) is not installed; scripts/install_sandbox.sh installs it"
    if bwrap:
        sandbox = Sandbox(True, bwrap=bwrap, python=python, scratch_mb=scratch_mb)
        problem = probe(sandbox)
        if not problem:
            return sandbox
    if mode == "required":
        raise SandboxUnavailable(f"MODEL_SANDBOX=required but models cannot be sandboxed here: {problem}")
    warning = (
        f"WARNING: model workers run WITHOUT a sandbox: {problem}. Participant models can then read "
        "everything this user can (the node's files and secrets) and reach the network. Set "
        "MODEL_SANDBOX=required to refuse to start instead, or MODEL_SANDBOX=off to silence this."
    )
    log.warning(warning)
    print(f"coordinator models: {warning}", file=sys.stderr, flush=True)
    return Sandbox(False, python=python, reason=problem)
