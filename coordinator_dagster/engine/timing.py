"""Per-round stage timing: when each stage of a live round ended, kept one JSON line per round in
`<home>/engine/timings.jsonl`, and the summary `GET /timing-metrics` serves.

A round's record holds microsecond wall-clock stamps (`round_us`: the round time; `landed_us`:
the feed file holding the record that closes the round was in place; `seen_us`: the engine
noticed it; then `inputs_us`, `models_us`, `persisted_us`, `reported_us`). Stages are the spans
between consecutive stamps, as the reference's timing summary defines its stages by a start and
an end field; `end_to_end` is landed → persisted (the latency target), reported separately from
the Dagster report, which follows the write.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import deque
from pathlib import Path
from typing import Any

TIMINGS_FILE = "timings.jsonl"
# (stage, start field, end field), in pipeline order.
STAGES = (
    ("feed_delay", "round_us", "landed_us"),
    ("detection", "landed_us", "seen_us"),
    ("input_build", "seen_us", "inputs_us"),
    ("model_calls", "inputs_us", "models_us"),
    ("write", "models_us", "persisted_us"),
    ("report", "persisted_us", "reported_us"),
)
END_TO_END = ("end_to_end", "landed_us", "persisted_us")
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


def timings_path(engine_dir: Path) -> Path:
    return engine_dir / TIMINGS_FILE


def append_timing(engine_dir: Path, record: dict[str, Any]) -> None:
    """Append one round's record (a single `write` of one line: readers never see half of one)."""
    engine_dir.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(timings_path(engine_dir), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def recent_timings(engine_dir: Path, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """The newest `limit` round records, oldest first (a line cut short by a crash is skipped)."""
    try:
        with open(timings_path(engine_dir), encoding="utf-8") as handle:
            lines = deque(handle, maxlen=limit)
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def percentile(values: list[float], p: int) -> float:
    """The p-th percentile (statistics' exclusive method, as the reference; one value: itself).
    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    """
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100)[p - 1]


def _spans(records: list[dict[str, Any]], start: str, end: str) -> list[float]:
    spans = []
    for record in records:
        if record.get(start) is not None and record.get(end) is not None and record[end] >= record[start]:
            spans.append(float(record[end] - record[start]))
    return spans


def _stage(name: str, step: int | str, spans: list[float], total_mean: float | None) -> dict[str, Any]:
    if not spans:
        return {"name": name, "step": step, "pct_of_total": None, "count": 0, "mean_us": None, "median_us": None,
                "min_us": None, "max_us": None, "p95_us": None, "p99_us": None}
    mean = statistics.mean(spans)
    return {
        "name": name,
        "step": step,
        "pct_of_total": round(mean / total_mean * 100, 1) if total_mean else None,
        "count": len(spans),
        "mean_us": mean,
        "median_us": statistics.median(spans),
        "min_us": min(spans),
        "max_us": max(spans),
        "p95_us": percentile(spans, 95),
        "p99_us": percentile(spans, 99),
    }


def timing_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The reference's `/timing-metrics` shape: per stage count, mean, median, min, max, p95, p99
    (microseconds) and its share of the end-to-end mean, then `end_to_end`; the newest samples."""
    total = _spans(records, END_TO_END[1], END_TO_END[2])
    total_mean = statistics.mean(total) if total else None
    stages = [_stage(name, step, _spans(records, start, end), total_mean) for step, (name, start, end) in enumerate(STAGES, start=1)]
    stages.append(_stage(END_TO_END[0], "total", total, total_mean))
    if stages[-1]["count"]:
        stages[-1]["pct_of_total"] = 100.0
    return {
        "enabled": True,
        "buffer_size": len(records),
        "total_records": len(records),
        "stage_latencies": stages,
        "recent_samples": records[-10:],
    }


def stage_metadata(record: dict[str, Any]) -> dict[str, float]:
    """One round's stages in milliseconds (a materialization's metadata)."""
    out = {}
    for name, start, end in (*STAGES, END_TO_END):
        if record.get(start) is not None and record.get(end) is not None:
            out[f"{name}_ms"] = round((record[end] - record[start]) / 1000, 3)
    return out
