"""The code location for runs whose steps execute on celery workers (dagster-celery), possibly on
other machines: the same definitions as code_location.py, with the celery executor.

The broker and result backend come from the environment when a run starts:
DAGSTER_CELERY_BROKER_URL (e.g. redis://broker.internal:6379/0) and DAGSTER_CELERY_BACKEND_URL
(e.g. redis://broker.internal:6379/1). Workers are started with the same two URLs
(deploy/celery.yaml: `dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml`),
and every worker needs this project installed, the node's environment (COORDINATOR_HOME on the
shared lake, DAGSTER_PG_URL) and the same DAGSTER_HOME instance settings: a step opens the run's
instance and the lake itself. docs/deployment.md, "Runs elsewhere", says how it was tested.
"""

from coordinator_dagster import known_warnings

known_warnings.accept()  # before the assets are defined: their decorators warn at import

from dagster_celery import celery_executor  # noqa: E402

from coordinator_dagster.definitions import build_defs  # noqa: E402

CELERY_EXECUTOR = celery_executor.configured(
    {"broker": {"env": "DAGSTER_CELERY_BROKER_URL"}, "backend": {"env": "DAGSTER_CELERY_BACKEND_URL"}},
    name="celery",
)

defs = build_defs(executor=CELERY_EXECUTOR)
