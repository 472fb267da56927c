"""Warnings that Dagster prints about this project's use of it and that the project has weighed
and accepts. `accept()` filters exactly those, by message, in every process that loads the
definitions (the code location's servers and run workers, the `coordinator` command), so the
`make run` terminal shows only what needs attention. pytest keeps its own list (pyproject.toml).
"""

from __future__ import annotations

import warnings

# (message regex, warning class name in dagster): why it is accepted.
ACCEPTED = (
    # backfill_policy=BackfillPolicy.single_run() is what makes a year's backfill a handful of
    # runs; Dagster 1.13 still labels the parameter beta.
    (r"Parameter `backfill_policy`", "BetaWarning"),
    # scripts/dagster.yaml's python_logs handler (every run's log into logs/runs.log).
    (r"Handling yaml-defined logging configuration", "BetaWarning"),
)


def accept() -> None:
    import dagster as dg

    for message, name in ACCEPTED:
        warnings.filterwarnings("ignore", message=message, category=getattr(dg, name))
