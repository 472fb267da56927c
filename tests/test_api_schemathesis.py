"""Property-based run of schemathesis over the app's own OpenAPI schema (stateless, every route).

In-process ASGI calls over a seeded lake; a bounded number of examples per operation keeps it
well under a minute. Every default check runs: no 5xx, documented status codes and content
types, responses that match their schema, and bad input rejected with a 4xx.

schemathesis' pytest integration (`from_fixture`) does not run under pytest 9, so the test
drives each operation's Hypothesis strategy itself and reports every failing operation at once.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from api.app import create_app
from api.settings import ApiSettings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from tests.api_fixtures import fake_dagster, new_dagster_state, seed_extras, seed_lake, serve

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

MAX_EXAMPLES = 40


def rejection_has_a_reason(ctx, response, case) -> None:
    """Stands in for `positive_data_acceptance`, which cannot know the rules OpenAPI does not
    express (start <= end, a tx_hash that decodes to 64 bytes): a 4xx must at least say why."""
    if 400 <= response.status_code < 500:
        detail = response.json().get("detail")
        assert detail, f"{response.status_code} without a reason: {response.text}"


KEY = "schemathesis-key"


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory):
    seeded = seed_lake(tmp_path_factory.mktemp("schemathesis"))
    seed_extras(seeded.lake)
    return seeded.lake.home


@pytest.mark.parametrize(
    ("api_key", "read_auth"), [(None, False), (KEY, True)], ids=["open", "key+read_auth"]
)
def test_every_operation_conforms_to_the_schema(lake_home, api_key, read_auth) -> None:
    """Open node: nothing asks for a key. Keyed node: the calls carry the key, and schemathesis'
    `ignored_auth` check also replays them without it and expects a 401."""
    with serve(fake_dagster(new_dagster_state()), health_path="/docs") as dagster_url:
        app = create_app(ApiSettings(home=lake_home, api_key=api_key, read_auth=read_auth, dagster_graphql_url=f"{dagster_url}/graphql"))
        run_all(schemathesis.openapi.from_asgi("/openapi.json", app), api_key)


def run_all(api_schema, api_key) -> None:
    headers = {"X-API-Key": KEY} if api_key else None
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def run(case) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance], additional_checks=[rejection_has_a_reason])

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # collect them all: one report lists every broken route
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    assert failures == {}, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
