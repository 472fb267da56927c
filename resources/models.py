"""The model runner as a resource: which models are registered and how a round is run.

Two implementations: `InProcessModelRunner` (models as objects in the run's process; tests and
`coordinator demo`) and `RemoteModelRunner` (the model runner service, `coordinator models
serve`, where each model lives in a worker process that outlasts runs). Both hand the asset a
`RoundRunner`: the registered models, `predict_round` for one input, and `close`.
"""

from __future__ import annotations

import http.client
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import dagster as dg
from pydantic import BaseModel

from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.models.runner import InProcessRunner, ModelSpec, Outcome, validate_output


class RoundRunner(Protocol):
    specs: list[ModelSpec]
    statuses: dict[str, str]  # model_id -> health status as the runner reports it

    def predict_round(self, payload: dict[str, Any], horizon_seconds: int, step_seconds: int) -> list[Outcome]: ...

    def close(self) -> None: ...


class ModelRunnerResource(dg.ConfigurableResource, ABC):
    timeout_seconds: float = 5.0

    @abstractmethod
    def open(self, output_type: type[BaseModel], replay: bool = False) -> RoundRunner:
        """A runner for this run's rounds; the caller closes it. `replay`: rounds from history,
        to be run on models whose state is separate from the live ones'."""


class InProcessModelRunner(ModelRunnerResource):
    """Models as objects in the run's own process (their state lasts for the run)."""

    # Path of a JSON model manifest; empty registers the three example models.
    manifest: str = ""

    def specs(self) -> list[ModelSpec]:
        return load_manifest(self.manifest)

    def open(self, output_type: type[BaseModel], replay: bool = False) -> RoundRunner:
        return InProcessRunner(self.specs(), output_type, self.timeout_seconds)


class RunnerServiceError(RuntimeError):
    """The model runner service could not be reached or refused a request."""


class _Connection:
    """A keep-alive JSON connection to the service. The standard library's client: a run process
    imports it for free, where httpx (with rich and pygments behind it) costs ~0.5 s per run."""

    def __init__(self, base: str, timeout: float):
        parts = urlsplit(base)
        if parts.scheme != "http" or not parts.hostname:
            raise RunnerServiceError(f"model runner URL {base!r} must look like http://HOST:PORT")
        self.host, self.port, self.prefix = parts.hostname, parts.port or 80, parts.path.rstrip("/")
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, self.prefix + path, body=data, headers=headers)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()  # a kept-alive connection the server closed: reconnect once
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _RemoteRound:
    """One run's view of the service: the live session, or a fresh replay session."""

    def __init__(self, client: _Connection, base: str, output_type: type[BaseModel], replay: bool):
        self.client = client
        self.base = base
        self.output_type = output_type
        self.session = "live"
        # A replay's session (fresh workers) is opened at its first round: a re-materialization
        # whose rounds are all recorded already starts no worker.
        self._replay_pending = replay
        self._registry(self._request("GET", "/models")["models"])

    def _registry(self, models: Sequence[dict[str, Any]]) -> None:
        self.specs = [ModelSpec(m["model_id"], m["name"], m["cruncher"], int(m["cruncher_index"]), m["entrypoint"], m.get("path") or "") for m in models]
        self.statuses = {m["model_id"]: m["status"] for m in models}

    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            status, raw = self.client.request(method, path, body)
        except (OSError, http.client.HTTPException) as exc:
            raise RunnerServiceError(f"model runner at {self.base}: {method} {path} failed: {exc!r} (is `coordinator models serve` running?)") from exc
        try:
            answer = json.loads(raw)
        except ValueError:
            raise RunnerServiceError(f"model runner at {self.base}: {method} {path} -> {status}, not JSON: {raw[:300]!r}") from None
        if status >= 400:
            detail = answer.get("error") if isinstance(answer, dict) else answer
            raise RunnerServiceError(f"model runner at {self.base}: {method} {path} -> {status}: {detail}")
        return answer

    def predict_round(self, payload: dict[str, Any], horizon_seconds: int, step_seconds: int) -> list[Outcome]:
        if self._replay_pending:
            self.session = self._request("POST", "/sessions", {})["session"]
            self._replay_pending = False
        body = self._request(
            "POST",
            "/predict",
            {"session": self.session, "inputs": [{"payload": payload, "horizon_seconds": horizon_seconds, "step_seconds": step_seconds}]},
        )
        # The service syncs the manifest before a live round: the models that answered are the
        # registered ones now.
        self._registry(body["models"])
        return [self._checked(Outcome(**row)) for row in body["results"][0]]

    def _checked(self, outcome: Outcome) -> Outcome:
        """Re-validate a PENDING answer against this code location's contract."""
        if outcome.status != "PENDING":
            return outcome
        try:
            validate_output(json.loads(outcome.output or "null"), self.output_type)
        except ValueError as exc:
            return Outcome(outcome.model_id, "FAILED", None, None, f"invalid output: {exc}"[:500], outcome.latency_ms)
        return outcome

    def close(self) -> None:
        try:
            if self.session != "live":
                self._request("DELETE", f"/sessions/{self.session}")
        finally:
            self.client.close()


class RemoteModelRunner(ModelRunnerResource):
    """The model runner service at `url` (MODEL_RUNNER_URL): models live in worker processes.

    Live runs use the service's long-lived workers; a replay gets a fresh session of workers
    created for the run and torn down after, so it neither sees nor changes live state.
    """

    url: str
    # Seconds to connect and to wait for the service beyond the models' own time limit.
    request_timeout_seconds: float = 30.0

    def open(self, output_type: type[BaseModel], replay: bool = False) -> RoundRunner:
        # A round takes at most the per-model timeout (the service enforces it), plus spawning.
        client = _Connection(self.url.rstrip("/"), self.request_timeout_seconds + self.timeout_seconds)
        try:
            return _RemoteRound(client, self.url.rstrip("/"), output_type, replay)
        except BaseException:
            client.close()
            raise
