"""Where the model orchestrator is and how the node treats its models (`OrchestratorConfig`),
and the ORCHESTRATOR_CRUNCHERS file that gives each cruncher its on-chain index."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field


class OrchestratorError(RuntimeError):
    """The orchestrator could not be reached, or refused what the node asked."""


@dataclass(frozen=True)
class OrchestratorConfig:
    host: str
    port: int
    crunch_id: str
    base_classname: str
    timeout_seconds: float
    feed_shape: str = "candle"
    cert_dir: str = ""  # secure mode (mTLS) when set
    # On-chain index of each cruncher, by wallet public key or cruncher id.
    cruncher_indexes: Mapping[str, int] = field(default_factory=dict)
    failure_limit: int = 3  # consecutive misses before a report
    streaks_path: str = ""
    connect_timeout: float = 10.0
    setup_timeout: float = 30.0

    @property
    def uri(self) -> str:
        return f"ws://{self.host}:{self.port}/{self.crunch_id}"


def cruncher_indexes(text: str) -> dict[str, int]:
    """The ORCHESTRATOR_CRUNCHERS file's content: `{"<wallet pubkey or cruncher id>": index}`."""
    loaded = json.loads(text)
    if not isinstance(loaded, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in loaded.values()):
        raise ValueError("expected a JSON object of wallet public key (or cruncher id) -> non-negative on-chain index")
    return {str(k): v for k, v in loaded.items()}
