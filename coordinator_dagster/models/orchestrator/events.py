"""The orchestrator's WebSocket messages: the model infos its `init` and `update` events carry,
and the `report_failure` message the node sends back.

Every message is a JSON object `{"event": name, "data": [...]}`. `init` comes first on each
connection and lists every model of the crunch; `update` lists models whose state changed. A
model entry: `deployment_id`, `model_id`, `infos` (`model_name`, `cruncher_id`, `cruncher_name`,
`cruncher_wallet_pubkey`, `cruncher_hotkey`), `state`, `ip`, `port`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ModelState(StrEnum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"  # also what the orchestrator sends for a failed or stopping run
    RECOVERING = "RECOVERING"  # restarting; back as RUNNING (maybe at a new address) if it recovers


class FailureCode(StrEnum):
    """Codes of `report_failure`; the orchestrator stops the model and tells its cruncher why."""

    BAD_IMPLEMENTATION = "BAD_IMPLEMENTATION"
    MULTIPLE_TIMEOUT = "MULTIPLE_TIMEOUT"
    MULTIPLE_FAILED = "MULTIPLE_FAILED"
    CONNECTION_FAILED = "CONNECTION_FAILED"
    LOW_PERFORMANCE = "LOW_PERFORMANCE"


@dataclass(frozen=True)
class ModelInfo:
    deployment_id: str
    model_id: str
    state: str
    ip: str
    port: int
    model_name: str = ""
    cruncher_id: str = ""
    cruncher_name: str = ""
    wallet_pubkey: str = ""
    hotkey: str = ""

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


class EventError(ValueError):
    """A message from the orchestrator that is not one of its events."""


def model_info(entry: dict[str, Any]) -> ModelInfo:
    infos = entry.get("infos") or {}
    try:
        return ModelInfo(
            deployment_id=str(entry["deployment_id"]),
            model_id=str(entry["model_id"]),
            state=str(entry["state"]),
            ip=str(entry.get("ip") or ""),
            port=int(entry.get("port") or 0),
            model_name=str(infos.get("model_name") or entry["model_id"]),
            cruncher_id=str(infos.get("cruncher_id") or ""),
            cruncher_name=str(infos.get("cruncher_name") or infos.get("cruncher_id") or ""),
            wallet_pubkey=str(infos.get("cruncher_wallet_pubkey") or ""),
            hotkey=str(infos.get("cruncher_hotkey") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EventError(f"model entry {entry!r}: {exc!r}") from None


def parse_event(text: str | bytes) -> tuple[str, list[ModelInfo]]:
    """(event name, model infos) of one message."""
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise EventError(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise EventError(f"not an event: {str(text)[:200]}")
    data = message.get("data") or []
    if not isinstance(data, list):
        raise EventError(f"{message['event']}: data is not a list")
    return message["event"], [model_info(entry) for entry in data]


def failure_report(info: ModelInfo, code: FailureCode, reason: str | None) -> str:
    """The `report_failure` message for one model (the orchestrator checks model and address)."""
    entry = {"model_id": info.model_id, "failure_code": code.value, "failure_reason": reason, "ip": info.ip}
    return json.dumps({"event": "report_failure", "data": [entry]})
