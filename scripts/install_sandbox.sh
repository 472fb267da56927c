#!/usr/bin/env bash
# Idempotent install of the model workers' sandbox: bubblewrap (/usr/bin/bwrap, Debian's
# `bubblewrap` package), which the model runner wraps around every worker
# (coordinator_dagster/models/sandbox.py).
#
# A no-op that takes milliseconds once bwrap exists. Installing needs root (CI runs as root);
# without root and without bwrap it says what to run and exits 1, so `make test` / `make run`
# stop with a clear message. It then checks that this host can create the namespaces the sandbox
# needs; if it cannot (e.g. user namespaces disabled), it warns: the runner then refuses to start
# with MODEL_SANDBOX=required (the tests) and runs models unsandboxed, loudly, with
# MODEL_SANDBOX=auto (the default).
#
# Environment: SANDBOX_INSTALL=skip leaves bubblewrap out.
set -euo pipefail

BWRAP=/usr/bin/bwrap
PACKAGES=(bubblewrap)

say() { echo "install_sandbox: $*" >&2; }

check_namespaces() {
    if ! "$BWRAP" --unshare-all --die-with-parent --uid 65534 --gid 65534 --ro-bind / / --proc /proc --dev /dev true 2>/tmp/coordinator-sandbox-check.err; then
        say "WARNING: bwrap is installed but cannot create a sandbox here: $(tr '\n' ' ' </tmp/coordinator-sandbox-check.err)"
        say "(model workers will run unsandboxed with MODEL_SANDBOX=auto; MODEL_SANDBOX=required refuses to start)"
    fi
    rm -f /tmp/coordinator-sandbox-check.err
}

if [ -x "$BWRAP" ]; then
    check_namespaces
    exit 0
fi
if [ "${SANDBOX_INSTALL:-}" = skip ]; then
    say "SANDBOX_INSTALL=skip: not installing ${PACKAGES[*]}; model workers will run unsandboxed (MODEL_SANDBOX=auto) or not at all (required)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "ERROR: $BWRAP is missing and this machine has no apt-get; install bubblewrap (https://github.com/containers/bubblewrap)"
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    say "ERROR: $BWRAP is missing and installing it needs root. Run:"
    say "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}"
    say "(or set SANDBOX_INSTALL=skip)"
    exit 1
fi

started=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
# Two `make test` started at once must not run apt together (apt's own lock fails fast).
exec 8>/tmp/coordinator-install-sandbox.lock
command -v flock >/dev/null 2>&1 && flock 8
if [ ! -x "$BWRAP" ]; then
    say "installing ${PACKAGES[*]} with apt-get (a few seconds, once per machine)"
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    } || {
        say "ERROR: apt-get install ${PACKAGES[*]} failed"
        exit 1
    }
fi
[ -x "$BWRAP" ] || {
    say "ERROR: apt-get finished but $BWRAP is missing"
    exit 1
}
check_namespaces
say "ready in $(($(date +%s) - started)) s: $("$BWRAP" --version)"
