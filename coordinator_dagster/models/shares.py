"""Which runner serves which model, when a node has several runner services (MODEL_RUNNER_URLS).

Rendezvous (highest-random-weight) hashing: a model goes to the runner whose hash of
(runner URL, model id) is highest. It needs no stored state, so the assignment is the same after
any restart; adding a runner moves only the models it now wins (about 1/n of them) and removing
one moves only its own models, so every other model keeps its worker and its state. The node's
client computes it and tells each runner its place in the list (`PUT /assignment`); the runner
applies the same function to its manifest, so a hot-reloaded model lands on the right runner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def _weight(runner: str, model_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{runner}\0{model_id}".encode(), digest_size=8).digest(), "big")


def owner(model_id: str, runners: Sequence[str]) -> int:
    """The index in `runners` of the runner that serves `model_id`."""
    return max(range(len(runners)), key=lambda index: _weight(runners[index], model_id))


def share(model_ids: Sequence[str], runners: Sequence[str], index: int) -> list[str]:
    """The ids among `model_ids` that runner `index` of `runners` serves, in their order."""
    return [model_id for model_id in model_ids if owner(model_id, runners) == index]
