"""The runner service's HTTP client against a loopback server that drops connections: a predict
that may have reached the service is never sent twice (its models are ABSENT, with the reason),
a connection the service closed while idle is replaced before anything is sent, reads are
retried once."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Callable

import dagster as dg
import pytest

from assets import default_assets
from coordinator_dagster.contracts import default_contract
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.client import open_round
from resources import RemoteModelRunner
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

MODELS = [
    {"model_id": m, "name": m.title(), "cruncher": f"c-{m}", "cruncher_index": i, "entrypoint": f"pkg.{m}:Model", "status": "healthy"}
    for i, m in enumerate(("alpha", "beta"))
]
PAYLOAD = {"subject": "BTC", "rows": []}


class DroppingServer:
    """HTTP/1.1 with keep-alive on raw sockets. `plan(method, path, count)` says what to do with
    the `count`-th request of that method and path: "answer", "drop" (read it, then close the
    connection without a word) or "answer-and-close". Every request read is recorded."""

    def __init__(self, plan: Callable[[str, str, int], str]):
        self.plan = plan
        self.requests: list[tuple[int, str, str]] = []  # (connection number, method, path)
        self.connections = 0
        self.closed = threading.Semaphore(0)  # released each time the server closes a connection
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def count(self, method: str, path: str) -> int:
        return sum(1 for _, m, p in self.requests if (m, p) == (method, path))

    def close(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                line = reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                length = 0
                while (header := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = json.loads(reader.read(length)) if length else None
                with self._lock:
                    self.requests.append((number, method, path))
                    action = self.plan(method, path, self.count(method, path))
                if action == "drop":
                    return
                answer = json.dumps(self._answer(method, path, body)).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
                if action == "answer-and-close":
                    return
        finally:
            reader.close()
            conn.close()
            self.closed.release()

    @staticmethod
    def _answer(method: str, path: str, body: dict | None) -> dict:
        if path == "/models":
            return {"models": MODELS}
        if path == "/sessions":
            return {"session": "replay-1"}
        if path == "/predict":
            row = lambda m: {"model_id": m["model_id"], "status": "PENDING", "value": 0.5, "output": '{"value": 0.5}', "failed_reason": None, "latency_ms": 1.0}  # noqa: E731
            return {"models": MODELS, "results": [[row(m) for m in MODELS]]}
        return {}


@pytest.fixture
def serve():
    servers: list[DroppingServer] = []

    def start(plan: Callable[[str, str, int], str]) -> DroppingServer:
        servers.append(DroppingServer(plan))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def open_live(server: DroppingServer):
    return open_round(server.url, default_contract().output_type, replay=False, timeout_seconds=5.0)


def test_a_predict_whose_connection_drops_is_not_resent_and_its_models_are_absent(serve):
    server = serve(lambda method, path, n: "drop" if (path, n) == ("/predict", 1) else "answer")
    runner = open_live(server)
    try:
        outcomes = runner.predict_round(PAYLOAD, 60, 60)
        assert [(o.model_id, o.status) for o in outcomes] == [("alpha", "ABSENT"), ("beta", "ABSENT")]
        assert "not resent, as models keep state" in outcomes[0].failed_reason
        assert "POST /predict was sent and got no answer" in outcomes[0].failed_reason
        assert server.count("POST", "/predict") == 1
        # The next round goes out on a fresh connection and is answered.
        assert [o.status for o in runner.predict_round(PAYLOAD, 60, 60)] == ["PENDING", "PENDING"]
        assert server.count("POST", "/predict") == 2 and server.connections == 2
    finally:
        runner.close()


def test_a_connection_the_service_closed_while_idle_is_replaced_before_the_predict_is_sent(serve):
    server = serve(lambda method, path, n: "answer-and-close" if path == "/models" else "answer")
    runner = open_live(server)
    try:
        assert server.closed.acquire(timeout=10)  # the service has closed the kept-alive connection
        assert [o.status for o in runner.predict_round(PAYLOAD, 60, 60)] == ["PENDING", "PENDING"]
        assert server.count("POST", "/predict") == 1
        assert [(number, path) for number, _, path in server.requests] == [(1, "/models"), (2, "/predict")]
    finally:
        runner.close()


def test_a_read_whose_connection_drops_is_retried_once(serve):
    server = serve(lambda method, path, n: "drop" if (path, n) == ("/models", 1) else "answer")
    runner = open_live(server)
    runner.close()
    assert server.count("GET", "/models") == 2 and [s.model_id for s in runner.specs] == ["alpha", "beta"]


def test_rounds_whose_predict_got_no_answer_are_recorded_absent_and_never_sent_again(serve, tmp_path):
    """Through the asset: each round is sent once, its models are ABSENT with the reason, and a
    second materialization of the hour sends nothing (the rounds are recorded)."""
    server = serve(lambda method, path, n: "drop" if path == "/predict" else "answer")
    home, now = tmp_path / "home", HOUR + dt.timedelta(hours=3)
    resources = pipeline_resources(home, now, model_runner=RemoteModelRunner(url=server.url, timeout_seconds=2.0))
    assert dg.materialize(default_assets, selection=["feed_records", "inputs"], resources=resources, partition_key=HOUR_KEY).success
    rounds = Lake(home).read("inputs", HOUR_KEY).height
    assert rounds > 0
    for _ in range(2):
        assert dg.materialize(default_assets, selection=["predictions"], resources=resources, partition_key=HOUR_KEY).success
    predictions = Lake(home).read("predictions", HOUR_KEY)
    assert server.count("POST", "/predict") == rounds
    assert predictions.height == 2 * rounds and set(predictions["status"]) == {"ABSENT"}
    assert predictions["failed_reason"].str.contains("not resent").all()
