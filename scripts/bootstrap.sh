#!/usr/bin/env bash
# Idempotent install of the project into <checkout>/.venv.
#
#   1. .tools/uv: a python3.11 venv holding uv==0.13.8 from PyPI (pyproject.toml requires it);
#   2. `uv sync --frozen --compile-bytecode` of uv.lock (dev group included) into .venv, the
#      project editable.
#
# A stamp (hash of uv.lock, pyproject.toml, the uv version and the Python) makes a second run a
# no-op that takes milliseconds. Needs only python3.11 and the package registry.
#
# Environment: PYTHON (default python3.11), BOOTSTRAP_FORCE=1 to re-sync regardless of the stamp.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.8"
PYTHON="${PYTHON:-python3.11}"
TOOLS="$ROOT/.tools"
UV_VENV="$TOOLS/uv"
UV="$UV_VENV/bin/uv"
VENV="$ROOT/.venv"
STAMP="$VENV/.bootstrap-stamp"

say() { echo "bootstrap: $*" >&2; }
die() {
    echo "bootstrap: ERROR: $*" >&2
    exit 1
}
trap 'rc=$?; [ $rc -eq 0 ] || echo "bootstrap: FAILED (exit $rc) at line $LINENO; nothing was left half-marked as installed, re-run make install" >&2' EXIT

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found on PATH; install Python 3.11 (or set PYTHON=/path/to/python3.11)"
[ -f "$ROOT/uv.lock" ] || die "$ROOT/uv.lock is missing; it is committed with the project"

stamp_of() {
    # Everything that decides what .venv holds.
    {
        sha256sum "$ROOT/uv.lock" "$ROOT/pyproject.toml" | cut -d' ' -f1
        echo "uv $UV_VERSION"
        echo "compile-bytecode"
        "$PYTHON" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

want="$(stamp_of)"
if [ "${BOOTSTRAP_FORCE:-0}" != 1 ] && [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/coordinator" ] &&
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0 # already installed from this exact lock
fi

mkdir -p "$TOOLS"
# Two `make` targets started at once must not install into the same folders together.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS/.bootstrap.lock"
    flock 9
fi

started=$(date +%s)

# 1. uv, pinned, in its own venv (never touching the system Python).
if ! [ -x "$UV" ] || [ "$("$UV" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    say "installing uv $UV_VERSION into ${UV_VENV#"$ROOT"/}"
    rm -rf "$UV_VENV"
    "$PYTHON" -m venv "$UV_VENV" || die "'$PYTHON -m venv' failed (on Debian/Ubuntu: apt-get install python3.11-venv)"
    "$UV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" ||
        die "pip could not install uv==$UV_VERSION from the package index (check network / 'pip config list')"
    [ "$("$UV" --version | cut -d' ' -f2)" = "$UV_VERSION" ] || die "$UV is not uv $UV_VERSION"
fi

# 2. The locked environment. --frozen: install exactly uv.lock, never re-resolve or rewrite it.
say "syncing .venv from uv.lock (uv $UV_VERSION, $("$PYTHON" -c 'import platform; print(platform.python_version())'))"
rm -f "$STAMP"
export UV_PROJECT_ENVIRONMENT="$VENV"
export UV_PYTHON_DOWNLOADS=never # use the machine's python3.11, never fetch one
export UV_NO_PROGRESS=1
# --compile-bytecode: installed packages ship no .pyc files, and where PYTHONDONTWRITEBYTECODE is
# set (CI images often set it) every process would compile dagster & co. again on import: about
# 4 s of CPU per Dagster run, code server or test subprocess, against 2 s with bytecode (uv
# writes nothing while that variable is set, hence the env -u).
(cd "$ROOT" && env -u PYTHONDONTWRITEBYTECODE "$UV" sync --frozen --compile-bytecode --python "$PYTHON" --group dev) ||
    die "'uv sync --frozen' failed; if uv.lock is out of date with pyproject.toml, run '.tools/uv/bin/uv lock' and commit uv.lock"
[ -x "$VENV/bin/coordinator" ] || die "uv sync finished but $VENV/bin/coordinator is missing"
"$VENV/bin/python" -c 'import coordinator_dagster, dagster' || die "the synced .venv cannot import the project"

echo "$want" >"$STAMP"
say "ready in $(($(date +%s) - started)) s: .venv ($("$VENV/bin/python" -c 'import dagster; print("dagster", dagster.__version__)'))"
