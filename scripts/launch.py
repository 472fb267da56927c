#!/usr/bin/env python3
"""Exec a command with default signal handling, in a session of its own.

    python3 scripts/launch.py [--no-setsid] [--pidfile FILE] [--] COMMAND [ARG...]

A process started in the background by a non-interactive shell inherits SIGINT (and, in some
sandboxes, SIGTERM) as *ignored*, and an ignored signal stays ignored across exec: `kill -INT`
then does nothing to `dagster dev`. This launcher resets SIGINT, SIGTERM, SIGHUP, SIGQUIT,
SIGPIPE and SIGXFSZ to their defaults, unblocks them, calls setsid() so that the command and
everything it starts form one process group (stop it all with `kill -TERM -- -<pid>`), then
execs the command. The pid does not change across exec, so `$!` of
`python3 scripts/launch.py CMD &` is the command's pid and its process-group id.

--no-setsid   keep the caller's session and process group (only reset the signals); for a
              foreground command that a terminal's Ctrl-C or a CI timeout must reach directly.
--pidfile F   write the pid (= the process-group id after setsid) to F before exec.

Runs on any Python 3; imports nothing outside the standard library.
"""

from __future__ import annotations

import errno
import os
import signal
import sys

RESET = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGPIPE", "SIGXFSZ")
USAGE = "usage: launch.py [--no-setsid] [--pidfile FILE] [--] COMMAND [ARG...]"


def reset_signals() -> None:
    signals = [getattr(signal, name) for name in RESET if hasattr(signal, name)]
    for sig in signals:
        signal.signal(sig, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


def new_session() -> None:
    try:
        os.setsid()
    except OSError as exc:
        # setsid() fails (EPERM) for a process-group leader, e.g. a command a job-control shell
        # started directly: it already has a process group of its own, which is what matters.
        if exc.errno != errno.EPERM or os.getpgid(0) != os.getpid():
            raise


def main(argv: list[str]) -> int:
    setsid = True
    pidfile = None
    args = list(argv)
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag == "--":
            break
        if flag == "--no-setsid":
            setsid = False
        elif flag == "--pidfile" and args:
            pidfile = args.pop(0)
        elif flag in ("-h", "--help"):
            print(USAGE)
            print(__doc__)
            return 0
        else:
            print(f"launch.py: unknown option {flag!r}\n{USAGE}", file=sys.stderr)
            return 2
    if not args:
        print(f"launch.py: no command given\n{USAGE}", file=sys.stderr)
        return 2
    reset_signals()
    if setsid:
        new_session()
    if pidfile:
        with open(pidfile, "w") as fh:
            fh.write(f"{os.getpid()}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(args[0], args)
    except OSError as exc:
        print(f"launch.py: cannot run {args[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # unreachable


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
