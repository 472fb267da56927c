"""Loopback stand-ins for CrunchDAO's model orchestrator and its model nodes (test doubles of the
outside world, speaking the real wire formats).

- `StandInOrchestrator`: a WebSocket server at `ws://127.0.0.1:<port>/<crunch_id>` that sends
  `init` (the models it lists) on each connection, broadcasts `update` events when told, and
  records the `report_failure` messages it receives.
- `ModelNode`: a gRPC server implementing `dynamic_subclass.DynamicSubclassService` with the
  messages generated from the protocol's .proto files. By default it answers as CrunchDAO's
  model-runner server does: `Setup` instantiates the model class once (a later Setup keeps the
  instance), success is an empty status, errors are gRPC errors (FAILED_PRECONDITION for no
  class to instantiate or a Call before Setup, INTERNAL when the model raised). Behaviours for
  the tests: `hang` (never answers `predict` until released), `answer` (replaces predict's
  answer, e.g. a string), `status` (answers every Call with that code in the message's status,
  as model-runner-client reads it), `stop()` (the node goes away).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import grpc
import websockets

from coordinator_dagster.models.orchestrator import variants
from coordinator_dagster.models.orchestrator.protocol import SERVICE
from coordinator_dagster.models.orchestrator.protocol.commons_pb2 import Status
from coordinator_dagster.models.orchestrator.protocol.dynamic_subclass_pb2 import CallRequest, CallResponse, RestResponse, SetupRequest, SetupResponse
from google.protobuf.empty_pb2 import Empty

_UNSET = object()


class ModelNode:
    def __init__(self, factory: Callable[[], Any], *, class_name: str = "", server_credentials: grpc.ServerCredentials | None = None,
                 initial_metadata: list[tuple[str, str]] | None = None):
        self.factory = factory
        self.class_name = class_name  # the base class Setup must name ("" accepts any)
        self.instance: Any = None
        self.setups = 0
        self.calls: list[str] = []
        self.hang = threading.Event()  # set: predict blocks until `release` is set
        self.release = threading.Event()
        self.answer: Any = _UNSET
        self.status = "SUCCESS"
        self.initial_metadata = initial_metadata or []
        self.server = grpc.server(ThreadPoolExecutor(max_workers=8))
        handlers = {
            "Setup": grpc.unary_unary_rpc_method_handler(self._setup, SetupRequest.FromString, SetupResponse.SerializeToString),
            "Call": grpc.unary_unary_rpc_method_handler(self._call, CallRequest.FromString, CallResponse.SerializeToString),
            "Rest": grpc.unary_unary_rpc_method_handler(self._rest, Empty.FromString, RestResponse.SerializeToString),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        address = "127.0.0.1:0"
        self.port = self.server.add_secure_port(address, server_credentials) if server_credentials else self.server.add_insecure_port(address)
        self.server.start()

    def _setup(self, request: SetupRequest, context: grpc.ServicerContext) -> SetupResponse:
        if self.initial_metadata:
            context.send_initial_metadata(self.initial_metadata)
        if self.instance is not None:
            return SetupResponse()
        if self.class_name and request.className != self.class_name:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"no subclass of {request.className} in the submission")
        self.instance = self.factory()
        self.setups += 1
        return SetupResponse()

    def _call(self, request: CallRequest, context: grpc.ServicerContext) -> CallResponse:
        self.calls.append(request.methodName)
        if self.instance is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "Setup has not been called yet")
        if self.status != "SUCCESS":
            return CallResponse(status=Status(code=self.status, message="the model raised ZeroDivisionError"))
        args = [variants.decode(a.data) for a in sorted(request.methodArguments, key=lambda a: a.position)]
        kwargs = {k.keyword: variants.decode(k.data) for k in request.methodKwArguments}
        if request.methodName == "predict" and self.hang.is_set():
            self.release.wait(30)
        try:
            result = getattr(self.instance, request.methodName)(*args, **kwargs)
        except Exception as exc:
            context.abort(grpc.StatusCode.INTERNAL, f"The model raised an exception: {exc!r}")
        if request.methodName == "predict" and self.answer is not _UNSET:
            result = self.answer
        return CallResponse() if result is None else CallResponse(methodResponse=variants.encode(result))

    def _rest(self, request: Empty, context: grpc.ServicerContext) -> RestResponse:
        return RestResponse()

    def restart(self) -> None:
        """The container restarted at the same address: its instance is gone."""
        self.instance = None

    def stop(self) -> None:
        """Go away as a killed container does: calls in flight are cut, not answered."""
        self.server.stop(grace=0).wait(5)
        self.release.set()  # lets a hung handler's thread end (its call is already cut)


def entry(model_id: str, node: ModelNode | None, *, deployment: str = "", state: str = "RUNNING", port: int | None = None,
          wallet: str = "", cruncher: str = "") -> dict[str, Any]:
    """One model as the orchestrator's events list it."""
    return {
        "deployment_id": deployment or f"dep-{model_id}",
        "model_id": model_id,
        "infos": {
            "model_name": f"{model_id} model",
            "cruncher_id": f"cid-{cruncher or model_id}",
            "cruncher_name": cruncher or f"cruncher of {model_id}",
            "cruncher_wallet_pubkey": wallet or f"wallet-{model_id}",
            "cruncher_hotkey": "",
        },
        "state": state,
        "ip": "127.0.0.1",
        "port": port if port is not None else (node.port if node else 1),
    }


class StandInOrchestrator:
    def __init__(self, crunch_id: str, models: list[dict[str, Any]]):
        self.crunch_id = crunch_id
        self.models = {m["model_id"]: m for m in models}
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self._clients: set[Any] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._run(self._serve())
        self.port = self._server.sockets[0].getsockname()[1]

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _serve(self) -> Any:
        return await websockets.serve(self._handler, "127.0.0.1", 0, ping_interval=None)

    async def _handler(self, ws: Any) -> None:
        if ws.request.path.strip("/") != self.crunch_id:
            await ws.close()
            return
        self.connections += 1
        self._clients.add(ws)
        try:
            await ws.send(json.dumps({"event": "init", "data": list(self.models.values())}))
            async for message in ws:
                self.received.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)

    def update(self, *models: dict[str, Any]) -> None:
        """Broadcast an `update` event (and remember the models' new states for later `init`s)."""
        for model in models:
            if model["state"] == "STOPPED":
                if self.models.get(model["model_id"], {}).get("deployment_id") == model["deployment_id"]:
                    self.models.pop(model["model_id"])
            else:
                self.models[model["model_id"]] = model
        text = json.dumps({"event": "update", "data": list(models)})

        async def send() -> None:
            for ws in list(self._clients):
                await ws.send(text)

        self._run(send())

    def drop_clients(self) -> None:
        async def close() -> None:
            for ws in list(self._clients):
                await ws.close()

        self._run(close())

    def failures(self) -> list[tuple[str, str]]:
        """(model_id, failure_code) of every report received, in order."""
        return [(d["model_id"], d["failure_code"]) for m in self.received if m.get("event") == "report_failure" for d in m["data"]]

    def wait_for_failures(self, count: int, timeout: float = 10.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while len(self.failures()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.failures()

    def close(self) -> None:
        self._server.close()
        self._run(self._server.wait_closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
