"""`RunLogFile`: the logging handler that `make run`'s dagster.yaml (`python_logs`) attaches to
every run, so each run's log at every level (DEBUG events included) is appended to
`$COORDINATOR_HOME/logs/runs.log` while the terminal shows INFO and above.

The path comes from the node's settings when Dagster builds the handler for a run, not from the
YAML file, so the instance template needs no per-home editing.
"""

from __future__ import annotations

import logging

from coordinator_dagster.settings import load_settings

RUN_LOG_NAME = "runs.log"


class RunLogFile(logging.FileHandler):
    def __init__(self) -> None:
        folder = load_settings().home / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        # Run workers are separate processes appending whole lines: each one opens the file itself.
        super().__init__(folder / RUN_LOG_NAME, encoding="utf-8")
