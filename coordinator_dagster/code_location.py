"""The code location `workspace.yaml` loads: `defs`, built from the environment at load time."""

from coordinator_dagster.definitions import build_defs

defs = build_defs()
