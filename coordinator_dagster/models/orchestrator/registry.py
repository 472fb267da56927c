"""Which orchestrator-hosted models exist, following the orchestrator's events (pure: no I/O).

`Registry.apply` takes one event's model infos and says which model connections to open and
which to close; the caller does the I/O. The rules:

- RUNNING, new model or new deployment of a known one (a redeployment) or new address: close
  the old connection if any, open one to the announced address. The same deployment at the same
  address only refreshes the infos (names, wallet).
- RECOVERING: close the connection and keep the model listed (its rounds are ABSENT) until it
  is RUNNING again or STOPPED.
- STOPPED: close and forget it.
- A STOPPED or RECOVERING event about a deployment other than the current one is stale (the old
  deployment of a model that was redeployed stops after the new one runs) and changes nothing.
- `init` (sent on every connection) is the whole truth: a listed model missing from it is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coordinator_dagster.models.orchestrator.events import ModelInfo, ModelState


@dataclass
class Changes:
    connect: list[ModelInfo] = field(default_factory=list)
    disconnect: list[ModelInfo] = field(default_factory=list)


class Registry:
    def __init__(self) -> None:
        self.models: dict[str, ModelInfo] = {}  # model_id -> its current deployment (RUNNING or RECOVERING)

    def apply(self, event: str, infos: list[ModelInfo]) -> Changes:
        changes = Changes()
        if event not in ("init", "update"):
            return changes
        for info in infos:
            self._apply_one(info, changes)
        if event == "init":
            listed = {info.model_id for info in infos}
            for model_id in [m for m in self.models if m not in listed]:
                self._forget(model_id, changes)
        return changes

    def drop(self, model_id: str) -> ModelInfo | None:
        """Forget a model the node reported as failed (the orchestrator stops it)."""
        return self.models.pop(model_id, None)

    def _forget(self, model_id: str, changes: Changes) -> None:
        current = self.models.pop(model_id)
        if current.state == ModelState.RUNNING:
            changes.disconnect.append(current)

    def _apply_one(self, info: ModelInfo, changes: Changes) -> None:
        current = self.models.get(info.model_id)
        if info.state == ModelState.RUNNING:
            if current is not None and current.state == ModelState.RUNNING and current.deployment_id == info.deployment_id and current.address == info.address:
                self.models[info.model_id] = info
                return
            if current is not None and current.state == ModelState.RUNNING:
                changes.disconnect.append(current)
            self.models[info.model_id] = info
            changes.connect.append(info)
        elif info.state in (ModelState.STOPPED, ModelState.RECOVERING):
            if current is None or current.deployment_id != info.deployment_id:
                return
            if current.state == ModelState.RUNNING:
                changes.disconnect.append(current)
            if info.state == ModelState.STOPPED:
                del self.models[info.model_id]
            else:
                self.models[info.model_id] = info
