"""A small client of Dagster's GraphQL API for feed backfills (the webserver of `dagster dev`).

Only three operations: list backfills, read one, launch an asset backfill of `feed_records` over
hour partitions. The query texts are checked against dagster-graphql's own schema in the tests.
Errors of the webserver (unreachable, GraphQL errors, error results) become `DagsterError` with
the message, which the routes answer as 502/404/409 rather than 500.
"""

from __future__ import annotations

from typing import Any

import httpx

BACKFILL_FIELDS = "id status numPartitions timestamp endTimestamp title partitionNames assetSelection { path }"

LIST_BACKFILLS = (
    "query ListBackfills($limit: Int, $status: BulkActionStatus) { partitionBackfillsOrError(limit: $limit, status: $status) { "
    "__typename ... on PartitionBackfills { results { " + BACKFILL_FIELDS + " } } ... on PythonError { message } } }"
)
GET_BACKFILL = (
    "query GetBackfill($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename "
    "... on PartitionBackfill { " + BACKFILL_FIELDS + " partitionStatusCounts { runStatus count } } "
    "... on BackfillNotFoundError { message } ... on PythonError { message } } }"
)
LAUNCH_BACKFILL = (
    "mutation LaunchBackfill($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) { "
    "__typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } } }"
)
RUNNING = ("REQUESTED", "CANCELING", "FAILING")


class DagsterError(RuntimeError):
    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status


class DagsterGraphQL:
    def __init__(self, url: str, timeout: float = 10.0, transport: httpx.BaseTransport | None = None):
        self.url = url
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(self.url, json={"query": query, "variables": variables})
        except httpx.HTTPError as exc:
            raise DagsterError(f"Dagster GraphQL at {self.url} is not reachable: {exc}") from None
        if response.status_code != 200:
            raise DagsterError(f"Dagster GraphQL at {self.url} answered {response.status_code}: {response.text[:300]}")
        try:
            body = response.json()
        except ValueError:
            raise DagsterError(f"Dagster GraphQL at {self.url} did not answer JSON") from None
        if body.get("errors"):
            raise DagsterError("Dagster GraphQL errors: " + "; ".join(str(e.get("message")) for e in body["errors"]))
        return body.get("data") or {}

    def backfills(self, limit: int, status: str | None = None) -> list[dict[str, Any]]:
        answer = self._call(LIST_BACKFILLS, {"limit": limit, "status": status})["partitionBackfillsOrError"]
        if answer.get("__typename") != "PartitionBackfills":
            raise DagsterError(f"Dagster could not list backfills: {answer.get('message')}")
        return answer["results"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        answer = self._call(GET_BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        if answer.get("__typename") == "BackfillNotFoundError":
            raise DagsterError(f"no backfill {backfill_id!r}", status=404)
        if answer.get("__typename") != "PartitionBackfill":
            raise DagsterError(f"Dagster could not read backfill {backfill_id!r}: {answer.get('message')}")
        return answer

    def launch_feed_backfill(self, partition_names: list[str], title: str) -> str:
        params = {"assetSelection": [{"path": ["feed_records"]}], "partitionNames": partition_names, "title": title}
        answer = self._call(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if answer.get("__typename") != "LaunchBackfillSuccess":
            raise DagsterError(f"Dagster refused the backfill ({answer.get('__typename')}): {answer.get('message')}")
        return answer["backfillId"]
