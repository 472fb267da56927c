"""The `RoundRunner` for models hosted by CrunchDAO's model orchestrator, and `report_failures`.

`OrchestratorRunner` keeps an asyncio loop in a thread of its own (the predictions asset calls
it synchronously): a WebSocket to `ws://host:port/<crunch_id>` whose `init` and `update` events
drive the `Registry`, one `ModelChannel` per RUNNING model, and the failure reports sent back on
the same WebSocket. A round calls every RUNNING model at once, each under the per-model time
limit (`timeout_seconds`, the whole of its calls for the round):

- PENDING: the model answered and the contract's output type accepts the answer;
- FAILED: the model node reported an error, or the answer is not what the contract asks;
- ABSENT: no answer in time, the model node unreachable (it went away mid-round), the model
  RECOVERING at the orchestrator or not connected yet.

The calls for one round follow the models' interface (`call_plan`): models derived from this
node's `TrackerBase` get `tick(payload)`, the reference's (`cruncher.ModelBaseClass`, anything
else) get `feed_update(<reference feed>)`; then `predict(subject, horizon, step)`.

The orchestrator keeps one instance of each model; a replay would feed it history and change the
live model's state, so this runner refuses replays (`OrchestratorError`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import websockets
from pydantic import BaseModel

from coordinator_dagster.models.orchestrator import variants
from coordinator_dagster.models.orchestrator.channel import OK_CODES, ModelChannel, SecureCredentials
from coordinator_dagster.models.orchestrator.config import OrchestratorConfig, OrchestratorError
from coordinator_dagster.models.orchestrator.events import EventError, FailureCode, ModelInfo, ModelState, failure_report, parse_event
from coordinator_dagster.models.orchestrator.protocol.commons_pb2 import Argument
from coordinator_dagster.models.orchestrator.registry import Registry
from coordinator_dagster.models.orchestrator.streaks import Miss, Streaks
from coordinator_dagster.models.reference_models import reference_feed
from coordinator_dagster.models.runner import ModelSpec, Outcome, validate_output
from coordinator_dagster.statuses import PredictionStatus

T = TypeVar("T")
TRACKER_BASE = "TrackerBase"  # coordinator_dagster.models.tracker.TrackerBase, by its class name
# Codes with which a model node says the coordinator called it wrongly: not the model's fault.
CALLER_ERRORS = ("INVALID_ARGUMENT", "FAILED_PRECONDITION")



def call_plan(base_classname: str, payload: dict[str, Any], horizon: int, step: int, feed_shape: str) -> list[tuple[str, list[Any]]]:
    """(method, positional arguments) to call, in order, for one round."""
    if base_classname.rpartition(".")[2] == TRACKER_BASE:
        update = ("tick", [payload])
    else:
        update = ("feed_update", [reference_feed(payload, feed_shape)])
    return [update, ("predict", [payload["subject"], horizon, step])]


@dataclass(frozen=True)
class Report:
    model_id: str
    deployment_id: str
    code: FailureCode
    reason: str | None


class OrchestratorRunner:
    def __init__(self, config: OrchestratorConfig, output_type: type[BaseModel]):
        if not config.crunch_id:
            raise OrchestratorError("CRUNCH_ID is required to reach the model orchestrator (ws://host:port/<crunch_id>)")
        self.config = config
        self.output_type = output_type
        self.credentials = SecureCredentials.from_directory(config.cert_dir) if config.cert_dir else None
        self.registry = Registry()
        self.channels: dict[str, ModelChannel] = {}
        self._setups: dict[ModelChannel, asyncio.Task] = {}
        self.streaks = Streaks(config.failure_limit, config.streaks_path or None)
        self.reports: list[Report] = []  # every report this runner sent, in order
        self._unsent: list[str] = []  # reports waiting for the WebSocket to come back
        self._ws: Any = None
        self._listener: asyncio.Task | None = None
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="orchestrator", daemon=True)
        self._thread.start()
        try:
            self._run(self._start(), config.connect_timeout + config.setup_timeout + 5)
        except BaseException:
            self.close()
            raise

    # ---- the synchronous face (RoundRunner) -------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @property
    def specs(self) -> list[ModelSpec]:
        return self._run(self._specs())

    @property
    def statuses(self) -> dict[str, str]:
        return self._run(self._statuses())

    def predict_round(self, payload: dict[str, Any], horizon_seconds: int, step_seconds: int) -> list[Outcome]:
        return self._run(self._round(payload, horizon_seconds, step_seconds))

    def disable(self, model_ids: Sequence[str], reason: str) -> list[str]:
        """Report models as LOW_PERFORMANCE (an operator's rule disabled them); the ids reported."""
        return self._run(self._disable(list(model_ids), reason))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            try:
                self._run(self._close(), 10)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(5)
        self._loop.close()

    # ---- inside the loop --------------------------------------------------------------------

    async def _start(self) -> None:
        await self._connect()
        self._listener = asyncio.create_task(self._listen())

    async def _connect(self) -> None:
        """Open the WebSocket and apply its first message, the `init` event."""
        try:
            self._ws = await websockets.connect(self.config.uri, open_timeout=self.config.connect_timeout, ping_interval=None)
            first = await asyncio.wait_for(self._ws.recv(), self.config.connect_timeout)
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            raise OrchestratorError(f"model orchestrator at {self.config.uri}: {exc!r}") from exc
        try:
            event, infos = parse_event(first)
        except EventError as exc:
            raise OrchestratorError(f"model orchestrator at {self.config.uri}: {exc}") from None
        if event != "init":
            raise OrchestratorError(f"model orchestrator at {self.config.uri}: first event {event!r}, expected 'init'")
        # At start the first round waits for every model's Setup; later (reconnects, updates) a
        # slow Setup must not hold up the events behind it.
        await self._apply(event, infos, wait=self._listener is None)
        while self._unsent:
            await self._ws.send(self._unsent.pop(0))

    async def _listen(self) -> None:
        """Follow `update` events; on a lost connection, reconnect (its `init` resynchronises)."""
        delay = 0.2
        while not self._closing:
            try:
                async for message in self._ws:
                    try:
                        await self._apply(*parse_event(message), wait=False)
                    except EventError:
                        continue  # one unreadable message is not a reason to drop the others
                delay = 0.2
            except websockets.ConnectionClosed:
                pass
            while not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                try:
                    await self._connect()
                    break
                except OrchestratorError:
                    continue

    async def _apply(self, event: str, infos: list[ModelInfo], wait: bool) -> None:
        changes = self.registry.apply(event, infos)
        for gone in changes.disconnect:
            channel = self.channels.pop(gone.model_id, None)
            if channel is not None:
                task = self._setups.pop(channel, None)
                if task is not None:
                    task.cancel()
                await channel.close()
        tasks = []
        for info in changes.connect:
            self.channels[info.model_id] = ModelChannel(info, self.credentials)
            tasks.append(self._start_setup(self.channels[info.model_id]))
        if wait and tasks:
            # Bounded: a model still loading (or unreachable) is ABSENT, never a stalled run.
            await asyncio.wait(tasks, timeout=self.config.connect_timeout)

    def _start_setup(self, channel: ModelChannel) -> asyncio.Task:
        """The channel's Setup in progress, or a new one: never two at once for one channel (each
        Setup makes a new instance of the model)."""
        task = self._setups.get(channel)
        if task is None or task.done():
            task = self._setups[channel] = asyncio.create_task(self._setup(channel))
        return task

    async def _setup(self, channel: ModelChannel) -> str | None:
        """Instantiate the model; None when ready, else why not (it is retried at the next round,
        except a bad implementation, which is reported)."""
        try:
            code, message = await channel.setup(self.config.base_classname, self.config.setup_timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INTERNAL):
                # No subclass of the base class in the submission, or its constructor raised.
                await self._report(channel.info, FailureCode.BAD_IMPLEMENTATION, f"Setup: {exc.details()}")
                return f"Setup failed ({exc.code().name}: {exc.details()})"
            return f"model node not reachable ({exc.code().name}: {exc.details()})"
        except Exception as exc:  # a refused wallet delegation, a TLS failure: this model only
            return f"model node refused: {exc}"
        if code in OK_CODES:
            return None
        if code == "BAD_IMPLEMENTATION":
            await self._report(channel.info, FailureCode.BAD_IMPLEMENTATION, message or "Setup: bad implementation")
        return f"Setup answered {code}: {message}"

    async def _specs(self) -> list[ModelSpec]:
        return [self._spec(info) for info in sorted(self.registry.models.values(), key=lambda i: i.model_id)]

    def _spec(self, info: ModelInfo) -> ModelSpec:
        indexes = self.config.cruncher_indexes
        index = indexes.get(info.wallet_pubkey, indexes.get(info.cruncher_id))
        # No known index stays None: emission refuses to guess a participant's on-chain index.
        return ModelSpec(info.model_id, info.model_name, info.cruncher_name, index, f"orchestrator:{info.deployment_id}")

    async def _statuses(self) -> dict[str, str]:
        out = {}
        for model_id, info in self.registry.models.items():
            channel = self.channels.get(model_id)
            if info.state == ModelState.RECOVERING:
                out[model_id] = "recovering"
            else:
                out[model_id] = "healthy" if channel is not None and channel.ready else "unreachable"
        return out

    async def _round(self, payload: dict[str, Any], horizon: int, step: int) -> list[Outcome]:
        infos = sorted(self.registry.models.values(), key=lambda i: i.model_id)
        # Encoded once: every model gets the same arguments.
        plan = [(method, variants.arguments(*args)) for method, args in call_plan(self.config.base_classname, payload, horizon, step, self.config.feed_shape)]
        outcomes = await asyncio.gather(*(self._ask(info, plan) for info in infos))
        self.streaks.save()
        return list(outcomes)

    async def _ask(self, info: ModelInfo, plan: list[tuple[str, list[Argument]]]) -> Outcome:
        def absent(reason: str, latency: float | None = None) -> Outcome:
            return Outcome(info.model_id, PredictionStatus.ABSENT, None, None, reason[:500], latency)

        def failed(reason: str, latency: float | None) -> Outcome:
            return Outcome(info.model_id, PredictionStatus.FAILED, None, None, reason[:500], latency)

        if info.state == ModelState.RECOVERING:
            return absent("model recovering at the orchestrator")
        channel = self.channels.get(info.model_id)
        if channel is None:
            return absent("model not connected")
        if not channel.ready:
            try:
                why = await asyncio.wait_for(asyncio.shield(self._start_setup(channel)), self.config.timeout_seconds)
            except TimeoutError:
                return absent("model not connected: Setup still running")
            if why is not None:
                return absent(f"model not connected: {why}")
        limit = self.config.timeout_seconds
        started = time.perf_counter()
        elapsed = lambda: (time.perf_counter() - started) * 1000.0  # noqa: E731
        response = None
        try:
            async with asyncio.timeout(limit):
                for method, args in plan:
                    remaining = max(0.001, limit - (time.perf_counter() - started))
                    response = await channel.call(method, args, remaining)
                    if response.status.code not in OK_CODES:
                        break
        except TimeoutError:
            return await self._missed(info, Miss.TIMEOUT, absent(f"no answer within {limit:g} s"))
        except grpc.aio.AioRpcError as exc:
            status, details = exc.code(), exc.details()
            if status == grpc.StatusCode.DEADLINE_EXCEEDED:
                return await self._missed(info, Miss.TIMEOUT, absent(f"no answer within {limit:g} s"))
            if status == grpc.StatusCode.INTERNAL:
                return await self._missed(info, Miss.FAILED, failed(f"model raised: {details}", elapsed()))
            if status == grpc.StatusCode.FAILED_PRECONDITION:
                # The node lost its instance (restarted at the same address): Setup again next round.
                channel.ready = False
                return absent(f"model node has no instance ({details}); set up again for the next round", elapsed())
            if status == grpc.StatusCode.INVALID_ARGUMENT:
                return failed(f"model node refused the call (INVALID_ARGUMENT): {details}", elapsed())
            return await self._missed(info, Miss.TIMEOUT, absent(f"model node unreachable ({status.name}: {details})", elapsed()))
        latency = elapsed()
        assert response is not None
        code, message = response.status.code, response.status.message
        if code == "BAD_IMPLEMENTATION":
            await self._report(info, FailureCode.BAD_IMPLEMENTATION, message or None)
            return failed(f"model node: BAD_IMPLEMENTATION: {message}", latency)
        if code in CALLER_ERRORS:
            return failed(f"model node refused the call ({code}): {message}", latency)
        if code not in OK_CODES:
            return await self._missed(info, Miss.FAILED, failed(f"model raised ({code}): {message}", latency))
        try:
            value, encoded = validate_output(variants.decode(response.methodResponse), self.output_type)
        except (ValueError, UnicodeDecodeError) as exc:
            return await self._missed(info, Miss.INVALID, failed(f"invalid output: {exc}", latency))
        self.streaks.answered(info.deployment_id)
        return Outcome(info.model_id, PredictionStatus.PENDING, value, encoded, None, latency)

    async def _missed(self, info: ModelInfo, miss: Miss, outcome: Outcome) -> Outcome:
        code = self.streaks.missed(info.deployment_id, miss)
        if code is not None:
            limit = self.config.failure_limit
            await self._report(info, code, f"{limit} consecutive rounds: {outcome.failed_reason}")
        return outcome

    async def _report(self, info: ModelInfo, code: FailureCode, reason: str | None) -> None:
        """Tell the orchestrator (it stops the model) and stop calling this deployment."""
        self.reports.append(Report(info.model_id, info.deployment_id, code, reason))
        message = failure_report(info, code, reason)
        try:
            await self._ws.send(message)
        except (websockets.ConnectionClosed, AttributeError):
            self._unsent.append(message)
        if self.registry.models.get(info.model_id) == info:
            self.registry.drop(info.model_id)
            channel = self.channels.pop(info.model_id, None)
            if channel is not None:
                await channel.close()

    async def _disable(self, model_ids: list[str], reason: str) -> list[str]:
        done = []
        for model_id in model_ids:
            info = self.registry.models.get(model_id)
            if info is not None:
                await self._report(info, FailureCode.LOW_PERFORMANCE, reason)
                done.append(model_id)
        return done

    async def _close(self) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.cancel()
        for task in self._setups.values():
            task.cancel()
        for channel in list(self.channels.values()):
            await channel.close()
        self.channels.clear()
        if self._ws is not None:
            await self._ws.close()


def report_failures(config: OrchestratorConfig, model_ids: Sequence[str], code: FailureCode, reason: str) -> list[str]:
    """Report models by id on a connection of their own (the CLI's `coordinator models disable`);
    the ids the orchestrator listed and that were reported."""

    async def go() -> list[str]:
        async with websockets.connect(config.uri, open_timeout=config.connect_timeout, ping_interval=None) as ws:
            _, infos = parse_event(await asyncio.wait_for(ws.recv(), config.connect_timeout))
            known = {info.model_id: info for info in infos}
            sent = []
            for model_id in model_ids:
                if model_id in known:
                    await ws.send(failure_report(known[model_id], code, reason))
                    sent.append(model_id)
            return sent

    try:
        return asyncio.run(go())
    except (OSError, TimeoutError, websockets.WebSocketException, EventError) as exc:
        raise OrchestratorError(f"model orchestrator at {config.uri}: {exc!r}") from exc
