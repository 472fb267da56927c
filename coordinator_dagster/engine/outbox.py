"""The engine's outbox: the rounds it is writing, so that a crash between the lake write and the
report to Dagster is repaired at the next start.

An entry is put before the round's predictions are written and dropped once both materializations
are reported. At start, an entry whose predictions are in the lake is reported (unless Dagster
already holds that report: the crash came after it), and one whose predictions are not is dropped
(the write never happened; the round is handled as any other). Entries are small JSON files put
by rename, one per round.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTBOX_DIR = "outbox"


@dataclass(frozen=True)
class Entry:
    round_stamp: str
    partition: str
    input_ids: list[str]
    timing: dict[str, Any]


class Outbox:
    def __init__(self, engine_dir: Path):
        self.dir = engine_dir / OUTBOX_DIR

    def _path(self, round_stamp: str) -> Path:
        return self.dir / f"{round_stamp.replace(':', '')}.json"

    def put(self, entry: Entry) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(entry.__dict__, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self._path(entry.round_stamp))

    def drop(self, round_stamp: str) -> None:
        self._path(round_stamp).unlink(missing_ok=True)

    def entries(self) -> list[Entry]:
        if not self.dir.is_dir():
            return []
        found = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                found.append(Entry(**json.loads(path.read_text(encoding="utf-8"))))
            except (ValueError, TypeError):
                path.unlink(missing_ok=True)  # cut short before its rename: never a real entry
        return found
