"""The code location `workspace.yaml` loads: `defs`, built from the environment at load time."""

from coordinator_dagster import known_warnings

known_warnings.accept()  # before the assets are defined: their decorators warn at import

from coordinator_dagster.definitions import build_defs  # noqa: E402

defs = build_defs()
