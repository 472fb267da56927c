"""The HTTP client of the model runner service (`coordinator models serve`): one run's view of it,
a `RemoteRound` that lists the registered models and predicts rounds in the live session or in a
fresh replay session.

A predict is not idempotent: the models keep state, so a round they saw twice has changed them
twice. The client therefore never resends a `POST` that may have reached the service. A kept-alive
connection the service has closed while idle is noticed before anything is written to it and
replaced by a fresh one; once a predict has been written, a dropped connection or a missing
answer makes that round's models ABSENT, with the reason, and the round is recorded as such
(a later run does not send it again). `GET` and `DELETE` are retried once on a dropped connection.

Every request carries the service's API token (`Authorization: Bearer`), MODEL_RUNNER_TOKEN unless
given, read when a round is opened.

A tournament round goes to the service as one `POST /tournament/predict` with every sample
(`RemoteTournament`): the service calls each model once per sample with the per-call timeout.

Several runner services (a comma-separated URL list, MODEL_RUNNER_URLS) make a `SharedRound`:
each runner is told its share of the manifest (`shares`), all are called at once per round, and
a runner that is down or fails makes only its own models ABSENT.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from coordinator_dagster.models.runner import ModelSpec, Outcome, validate_output
from coordinator_dagster.models.shares import owner
from coordinator_dagster.statuses import PredictionStatus

_DROPPED = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class RunnerServiceError(RuntimeError):
    """The model runner service could not be reached or refused a request."""


class RequestInDoubt(RunnerServiceError):
    """A request that must not be repeated was sent, and no answer came back: it may have run."""


def _closed_by_peer(sock: socket.socket | None) -> bool:
    """Whether an idle kept-alive socket is unusable, checked without blocking: an idle HTTP/1.1
    connection has nothing to read, so a readable one is at EOF (the server closed it) or holds
    bytes no request asked for."""
    if sock is None:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class Connection:
    """A keep-alive JSON connection to the service. The standard library's client: a run process
    imports it for free, where httpx (with rich and pygments behind it) costs ~0.5 s per run."""

    def __init__(self, base: str, timeout: float, token: str = ""):
        parts = urlsplit(base)
        if parts.scheme != "http" or not parts.hostname:
            raise RunnerServiceError(f"model runner URL {base!r} must look like http://HOST:PORT")
        self.host, self.port, self.prefix = parts.hostname, parts.port or 80, parts.path.rstrip("/")
        self.timeout = timeout
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None, *, idempotent: bool) -> tuple[int, bytes]:
        """(status, body). A failure before anything was sent raises the socket's error; after,
        an idempotent request is sent once more on a fresh connection and any other raises
        `RequestInDoubt`."""
        data = None if body is None else json.dumps(body).encode()
        headers = ({"Content-Type": "application/json"} if data is not None else {}) | self._auth
        for attempt in (1, 2):
            if self._conn is not None and _closed_by_peer(self._conn.sock):
                self.close()  # closed by the service while idle: nothing of this request was sent
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                try:
                    self._conn.connect()  # errors here: nothing was sent
                except OSError:
                    self.close()
                    raise
            try:
                self._conn.request(method, self.prefix + path, body=data, headers=headers)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if not idempotent:
                    raise RequestInDoubt(f"{method} {path} was sent and got no answer ({exc!r})") from exc
                if attempt == 2 or not isinstance(exc, _DROPPED):
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _spec(entry: dict[str, Any]) -> ModelSpec:
    return ModelSpec(entry["model_id"], entry["name"], entry["cruncher"], int(entry["cruncher_index"]), entry["entrypoint"], entry.get("path") or "")


class RemoteRound:
    """One run's view of the service: the live session, or a fresh replay session."""

    def __init__(self, client: Connection, base: str, output_type: type[BaseModel], replay: bool):
        self.client = client
        self.base = base
        self.output_type = output_type
        self.session = "live"
        # A replay's session (fresh workers) is opened at its first round: a re-materialization
        # whose rounds are all recorded already starts no worker.
        self._replay_pending = replay
        body = self._request("GET", "/models")
        self.manifest = [_spec(m) for m in body.get("manifest", [])]  # every model, whoever serves it
        self._registry(body["models"])

    def _registry(self, models: Sequence[dict[str, Any]]) -> None:
        self.specs = [_spec(m) for m in models]
        self.statuses = {m["model_id"]: m["status"] for m in models}

    def assign(self, runners: Sequence[str], index: int) -> None:
        """Make this runner serve its share of the manifest (`shares`), as runner `index`."""
        body = self._request("PUT", "/assignment", {"runners": list(runners), "index": index})
        self.manifest = [_spec(m) for m in body.get("manifest", [])]
        self._registry(body["models"])

    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            status, raw = self.client.request(method, path, body, idempotent=method in ("GET", "PUT", "DELETE"))
        except RequestInDoubt as exc:
            raise RequestInDoubt(f"model runner at {self.base}: {exc}") from exc.__cause__
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
        try:
            body = self._request(
                "POST",
                "/predict",
                {"session": self.session, "inputs": [{"payload": payload, "horizon_seconds": horizon_seconds, "step_seconds": step_seconds}]},
            )
        except RequestInDoubt as exc:
            reason = f"no answer from the model runner after the round was sent; not resent, as models keep state: {exc}"
            return [Outcome(spec.model_id, PredictionStatus.ABSENT, None, None, reason[:500], None) for spec in self.specs]
        # The service syncs the manifest before a live round: the models that answered are the
        # registered ones now.
        self._registry(body["models"])
        return [self._checked(Outcome(**row)) for row in body["results"][0]]

    def _checked(self, outcome: Outcome) -> Outcome:
        """Re-validate a PENDING answer against this code location's contract."""
        if outcome.status != PredictionStatus.PENDING:
            return outcome
        try:
            validate_output(json.loads(outcome.output or "null"), self.output_type)
        except ValueError as exc:
            return Outcome(outcome.model_id, PredictionStatus.FAILED, None, None, f"invalid output: {exc}"[:500], outcome.latency_ms)
        return outcome

    def close(self) -> None:
        try:
            if self.session != "live":
                self._request("DELETE", f"/sessions/{self.session}")
        finally:
            self.client.close()


class SharedRound:
    """One run's view of several runner services, each serving its share of the manifest."""

    def __init__(self, urls: Sequence[str], output_type: type[BaseModel], *, replay: bool, timeout_seconds: float, token: str):
        self.urls = list(urls)
        self.rounds: dict[str, RemoteRound] = {}
        self.down: dict[str, str] = {}  # runner -> why it is not used in this run
        self._pool = ThreadPoolExecutor(max_workers=len(self.urls), thread_name_prefix="runners")
        opened = {url: self._pool.submit(_open_one, url, output_type, replay, timeout_seconds, token) for url in self.urls}
        for url, future in opened.items():
            try:
                self.rounds[url] = future.result()
            except RunnerServiceError as exc:
                self.down[url] = str(exc)
        if not self.rounds:
            self._pool.shutdown()
            raise RunnerServiceError("no model runner could be reached: " + "; ".join(self.down.values()))
        assigned = {url: self._pool.submit(self.rounds[url].assign, self.urls, self.urls.index(url)) for url in self.rounds}
        for url, future in assigned.items():
            try:
                future.result()
            except RunnerServiceError as exc:
                self._drop(url, str(exc))
        if not self.rounds:
            self._pool.shutdown()
            raise RunnerServiceError("no model runner accepted its share: " + "; ".join(self.down.values()))
        self.specs = list(next(iter(self.rounds.values())).manifest)
        self.statuses = {spec.model_id: "unreachable" for spec in self.specs}
        for remote in self.rounds.values():
            self.statuses.update(remote.statuses)

    def _drop(self, url: str, reason: str) -> None:
        remote = self.rounds.pop(url)
        self.down[url] = reason
        remote.client.close()

    def predict_round(self, payload: dict[str, Any], horizon_seconds: int, step_seconds: int) -> list[Outcome]:
        """Every runner at once; the models of a runner that is down or fails are ABSENT."""
        calls = {url: self._pool.submit(remote.predict_round, payload, horizon_seconds, step_seconds) for url, remote in self.rounds.items()}
        outcomes: dict[str, Outcome] = {}
        failed: dict[str, str] = dict(self.down)
        for url, future in calls.items():
            try:
                outcomes.update((o.model_id, o) for o in future.result())
            except RunnerServiceError as exc:
                failed[url] = str(exc)
        rows = []
        for spec in self.specs:
            if spec.model_id in outcomes:
                rows.append(outcomes[spec.model_id])
                continue
            url = self.urls[owner(spec.model_id, self.urls)]
            reason = f"model runner {url} unavailable: {failed[url]}" if url in failed else f"model runner {url} did not run this model"
            rows.append(Outcome(spec.model_id, PredictionStatus.ABSENT, None, None, reason[:500], None))
        return rows

    def close(self) -> None:
        try:
            for future in [self._pool.submit(remote.close) for remote in self.rounds.values()]:
                try:
                    future.result()
                except RunnerServiceError:
                    pass  # its replay session expires on its own
        finally:
            self._pool.shutdown()


def _open_one(url: str, output_type: type[BaseModel], replay: bool, timeout_seconds: float, token: str) -> RemoteRound:
    client = Connection(url.rstrip("/"), timeout_seconds, token)
    try:
        return RemoteRound(client, url.rstrip("/"), output_type, replay)
    except BaseException:
        client.close()
        raise


def open_round(url: str, output_type: type[BaseModel], *, replay: bool, timeout_seconds: float, token: str | None = None) -> RemoteRound | SharedRound:
    """A `RemoteRound` on the service at `url` (with `token`, by default MODEL_RUNNER_TOKEN), or a
    `SharedRound` when `url` lists several, separated by commas; the caller closes it."""
    if token is None:
        token = os.environ.get("MODEL_RUNNER_TOKEN", "").strip()
    urls = [part.strip().rstrip("/") for part in url.split(",") if part.strip()]
    if len(urls) > 1:
        return SharedRound(urls, output_type, replay=replay, timeout_seconds=timeout_seconds, token=token)
    return _open_one(url, output_type, replay, timeout_seconds, token)


class RemoteTournament:
    """Tournament rounds on the service's live models: every sample of a round in one request,
    never resent (a model may have seen it); a request in doubt fails the round's every row."""

    STARTUP_ALLOWANCE_SECONDS = 90.0  # a worker restarted mid-round loads its model again

    def __init__(self, url: str, timeout_seconds: float, token: str | None = None):
        self.base = url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.token = os.environ.get("MODEL_RUNNER_TOKEN", "").strip() if token is None else token

    def predict_samples(self, samples: Sequence[dict[str, Any]]) -> dict[str, list[Outcome]]:
        # The answer comes after every model went through every sample, each call bounded by the
        # service's timeout: wait that long for it (a model runs its samples in order).
        wait = self.STARTUP_ALLOWANCE_SECONDS + len(samples) * (self.timeout_seconds + 1.0)
        client = Connection(self.base, wait, self.token)
        try:
            status, raw = client.request("POST", "/tournament/predict", {"samples": list(samples)}, idempotent=False)
        except RequestInDoubt as exc:
            raise RequestInDoubt(f"model runner at {self.base}: {exc}; the round was not resent") from exc.__cause__
        except (OSError, http.client.HTTPException) as exc:
            raise RunnerServiceError(f"model runner at {self.base}: POST /tournament/predict failed: {exc!r} (is `coordinator models serve` running?)") from exc
        finally:
            client.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            raise RunnerServiceError(f"model runner at {self.base}: POST /tournament/predict -> {status}, not JSON: {raw[:300]!r}") from None
        if status >= 400:
            raise RunnerServiceError(f"model runner at {self.base}: POST /tournament/predict -> {status}: {answer.get('error') if isinstance(answer, dict) else answer}")
        return {model_id: [Outcome(**row) for row in rows] for model_id, rows in answer["results"].items()}

    def close(self) -> None:
        pass  # one connection per round, closed with it
