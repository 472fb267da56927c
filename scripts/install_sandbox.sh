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

# shellcheck source=scripts/apt_packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt_packages.sh"
if apt_packages_missing "$BWRAP"; then
    apt_packages_install install_sandbox SANDBOX_INSTALL "$BWRAP" "${PACKAGES[@]}"
    if apt_packages_missing "$BWRAP"; then  # SANDBOX_INSTALL=skip
        say "model workers will run unsandboxed (MODEL_SANDBOX=auto) or not at all (required)"
        exit 0
    fi
    say "ready: $("$BWRAP" --version)"
fi
check_namespaces
