#!/usr/bin/env bash
# Idempotent install of a Redis server binary (Debian's `redis-server`: /usr/bin/redis-server) for
# the tests that run Dagster's steps on celery workers with Redis as the broker
# (tests/test_runs_elsewhere.py start a throwaway server of their own on a loopback port; Debian's
# own service is neither used nor needed).
#
# A no-op once /usr/bin/redis-server exists. Installing needs root (CI runs as root); without root
# it says what to run and exits 1. Without the binary those tests are skipped with a printed reason.
#
# Environment: REDIS_INSTALL=skip leaves Redis out.
set -euo pipefail

# shellcheck source=scripts/apt_packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt_packages.sh"
apt_packages_install install_redis REDIS_INSTALL "/usr/bin/redis-server" redis-server
