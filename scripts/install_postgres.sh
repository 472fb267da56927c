#!/usr/bin/env bash
# Idempotent install of a PostgreSQL server's binaries (Debian's `postgresql-15`: initdb, postgres,
# pg_isready under /usr/lib/postgresql/15/bin) for the tests that run the Dagster instance on
# PostgreSQL (tests/test_postgres_storage.py start a throwaway server of their own from them; no
# cluster is created and no service is started here).
#
# A no-op once any /usr/lib/postgresql/<major>/bin/initdb exists. Installing needs root (CI runs
# as root); without root it says what to run and exits 1. Without the binaries those tests are
# skipped with a printed reason.
#
# Environment: POSTGRES_INSTALL=skip leaves PostgreSQL out.
set -euo pipefail

for initdb in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$initdb" ] && exit 0
done

# shellcheck source=scripts/apt_packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt_packages.sh"
# Debian's package may also create (and start) a cluster of its own on port 5432; the tests
# neither use nor need it.
apt_packages_install install_postgres POSTGRES_INSTALL "/usr/lib/postgresql/15/bin/initdb /usr/lib/postgresql/15/bin/postgres" postgresql-15
