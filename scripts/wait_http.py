#!/usr/bin/env python3
"""Wait until URLs answer HTTP 200 and say when each one is ready (standard library only).

    python3 scripts/wait_http.py [--timeout SECONDS] [--quiet] CHECK [CHECK...]

A CHECK is `URL` or `LABEL|SHOWN ADDRESS|URL`. Prints "coordinator: <label> ready at <address>
after N s" as each URL first answers 200. Exit 0 when all did within the timeout, else 1.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import urllib.error
import urllib.request


def wait(url: str, timeout: float, interval: float = 0.5) -> float | None:
    """Seconds until `url` answered 200, or None after `timeout` seconds."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - began
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(interval)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("checks", nargs="+", metavar="CHECK")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--quiet", action="store_true", help="print only failures")
    args = parser.parse_args(argv)

    ok: list[bool] = []

    def check(spec: str) -> None:
        parts = spec.split("|")
        label, shown, url = parts if len(parts) == 3 else (spec, spec, spec)
        elapsed = wait(url, args.timeout)
        ok.append(elapsed is not None)
        if elapsed is None:
            print(f"coordinator: {label} did not answer {url} within {args.timeout:.0f} s", file=sys.stderr, flush=True)
        elif not args.quiet:
            print(f"coordinator: {label} ready at {shown} after {elapsed:.1f} s", flush=True)

    threads = [threading.Thread(target=check, args=(spec,), daemon=True) for spec in args.checks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
