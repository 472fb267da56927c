#!/usr/bin/env bash
# `make stop`: stop a `make run` started elsewhere (another terminal, or in the background).
# Asks run.sh to stop (SIGTERM: it stops dagster dev, then the API, the model runner and the feed
# listener); if run.sh is gone or does not react, stops the process groups recorded in $COORDINATOR_HOME/run/*.pid itself.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${COORDINATOR_HOME:-$ROOT/.coordinator}/run"

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -f "$RUN_DIR/$1.pid" ] && cat "$RUN_DIR/$1.pid" || true; }

run_pid="$(pid_of run)"
stopped=0
if alive "$run_pid"; then
    stopped=1
    echo "stop: asking run.sh (pid $run_pid) to stop"
    kill -TERM "$run_pid" 2>/dev/null || true
    for _ in $(seq 450); do alive "$run_pid" || break; sleep 0.1; done
fi
for entry in dagster:INT api:TERM models:TERM feeds:TERM; do
    name="${entry%%:*}" sig="${entry##*:}"
    pgid="$(pid_of "$name")"
    if [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; then
        echo "stop: stopping $name (process group $pgid)"
        kill "-$sig" -- "-$pgid" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pgid" 2>/dev/null || true
        stopped=1
    fi
    rm -f "$RUN_DIR/$name.pid"
done
rm -f "$RUN_DIR/run.pid"
if [ "$stopped" = 1 ]; then echo "stop: done"; else echo "stop: nothing was running"; fi
