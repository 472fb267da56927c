"""`coordinator demo`: a whole simulated competition in one process, feed to checkpoint.

Runs the real assets through Dagster's in-process `materialize` over ranges of hourly partitions
(single-run backfills), with the clock pinned just after the window so the output is the same on
every run: same seed, same rows, same leaderboard, same emission.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from coordinator_dagster.contracts import CrunchContract, load_contract
from coordinator_dagster.definitions import build_defs
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT, checkpoint_partitions, period_key_for, period_window
from coordinator_dagster.settings import load_settings
from resources import ClockResource

CHUNK_HOURS = 6
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass
class DemoResult:
    leaderboard: pl.DataFrame
    checkpoints: pl.DataFrame
    seconds: float
    lake_root: Path | None = None
    # Predictions of the demo's window by status: what the leaderboard ranked.
    predictions: dict[str, int] | None = None


def demo_home(settings_home: Path) -> Path:
    """The demo's own home, `demo/` inside the node's, so a demo never mixes with (or ranks) the
    data of a node running from the same checkout."""
    return settings_home / "demo"


def _chunks(start: dt.datetime, end: dt.datetime) -> list[tuple[str, str]]:
    out = []
    cursor = start
    while cursor < end:
        last = min(cursor + dt.timedelta(hours=CHUNK_HOURS), end) - dt.timedelta(hours=1)
        out.append((cursor.strftime(WINDOW_KEY_FORMAT), last.strftime(WINDOW_KEY_FORMAT)))
        cursor = last + dt.timedelta(hours=1)
    return out


def progress_bar(done: int, total: int, label: str, width: int = 30) -> str:
    filled = width * done // total
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<40}"


def demo_definitions(
    home: Path, contract: CrunchContract, seed: int, partitions_start: dt.datetime, now: dt.datetime
) -> tuple[list, dict]:
    """The node's assets and resources for a demo: its own home, the seeded synthetic feed over the
    contract's subjects, the node's models (MODELS_MANIFEST), partitions from the demo's first
    data, the clock pinned at `now`; everything else the defaults, whatever the environment says
    (no ccxt, no runner service)."""
    configured = load_settings()
    settings = load_settings({}).model_copy(
        update={
            "home": Path(home),
            "synthetic_seed": seed,
            "feed_subjects": contract.subjects or configured.feed_subjects,
            "models_manifest": configured.models_manifest,
            "model_timeout_seconds": configured.model_timeout_seconds,
            "partitions_start": partitions_start,
            "checkpoint_interval_seconds": configured.checkpoint_interval_seconds,
        }
    )
    defs = build_defs(settings=settings, contract=contract, resource_overrides={"clock": ClockResource(fixed_now=now.isoformat())})
    return list(defs.assets or []), dict(defs.resources or {})


def checkpoint_clock(
    contract: CrunchContract, partitions_start: dt.datetime, end: dt.datetime, settled: dt.datetime
) -> tuple[dg.PartitionsDefinition, dt.datetime]:
    """The checkpoint periods from `partitions_start` (CHECKPOINT_INTERVAL_SECONDS when set, as it
    cuts them for the node, else the contract's period), and the demo's clock: past `settled`
    (when the window's rounds are all resolved) and past the end of the period holding the
    window's last instant before `end`, so that period's checkpoint exists."""
    periods = checkpoint_partitions(load_settings().checkpoint_interval_seconds or contract.checkpoint_period, partitions_start)
    _, last_period_end = period_window(periods, period_key_for(periods, end - dt.timedelta(microseconds=1)))
    return periods, max(settled, last_period_end)


def period_keys_between(periods: dg.PartitionsDefinition, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> list[str]:
    """The checkpoint periods, ended by `now`, that overlap [start, end)."""
    windows = {key: period_window(periods, key) for key in periods.get_partition_keys(current_time=now)}
    return [key for key, (first, last) in windows.items() if last > start and first < end and last <= now]


def run_steps(
    assets: list,
    resources: dict,
    instance: dg.DagsterInstance,
    steps: list[tuple[str, list[str], dict[str, str] | str]],
    report: Callable[[str], None] | None = None,
) -> None:
    """Materialize each (label, asset selection, partition key or range tags) in order, in process."""
    for i, (label, selection, partition) in enumerate(steps, start=1):
        if report:
            report(progress_bar(i - 1, len(steps), label))
        result = dg.materialize(
            assets,
            selection=selection,
            resources=resources,
            instance=instance,
            partition_key=partition if isinstance(partition, str) else None,
            tags=partition if isinstance(partition, dict) else None,
            raise_on_error=True,
            # Dagster's per-step DEBUG lines would drown the progress bar; failures still show.
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        if not result.success:
            raise RuntimeError(f"demo step {label!r} failed")
    if report:
        report(progress_bar(len(steps), len(steps), "done") + "\n")


def run_demo(
    home: Path,
    start: dt.datetime,
    days: int,
    seed: int = 7,
    contract: CrunchContract | None = None,
    instance: dg.DagsterInstance | None = None,
    report: Callable[[str], None] | None = None,
) -> DemoResult:
    began = time.perf_counter()
    contract = contract or load_contract()
    end = start + dt.timedelta(days=days)
    # One hour past the window holds the truth of its last rounds; the grace period after it
    # closes what stays unresolvable; and the checkpoint period holding the window must have
    # ended for its checkpoint to exist. The demo's clock sits past all three.
    truth_end = end + dt.timedelta(hours=1)
    # The partitions start with the demo's data: the hour before the window (the first rounds' history).
    feed_start = start - dt.timedelta(hours=1)
    periods, now = checkpoint_clock(contract, feed_start, end, truth_end + dt.timedelta(seconds=contract.ground_truth_grace_seconds))
    assets, resources = demo_definitions(home, contract, seed, feed_start, now)
    instance = instance or dg.DagsterInstance.ephemeral()

    period_keys = period_keys_between(periods, start, end, now)
    steps: list[tuple[str, list[str], dict[str, str] | str]] = []
    steps += [(f"feed {a} → {b}", ["feed_records"], {RANGE_START_TAG: a, RANGE_END_TAG: b}) for a, b in _chunks(feed_start, truth_end)]
    steps += [(f"predict {a} → {b}", ["inputs", "predictions"], {RANGE_START_TAG: a, RANGE_END_TAG: b}) for a, b in _chunks(start, end)]
    # A trading contract replays its orders into portfolios where others score predictions.
    scoring = ["trading_replay", "snapshots"] if contract.trading is not None else ["scores", "snapshots"]
    steps += [(f"score {a} → {b}", scoring, {RANGE_START_TAG: a, RANGE_END_TAG: b}) for a, b in _chunks(start, end)]
    steps.append(("leaderboard", ["leaderboard"], {}))
    steps += [(f"checkpoint {key}", ["checkpoints"], key) for key in period_keys]

    run_steps(assets, resources, instance, steps, report)

    lake = Lake.for_contract(home, contract)
    # The lake's predictions view carries the derived status (SCORED once a score, or a trading fill, exists).
    window = lake.query("SELECT status, count(*) FROM predictions WHERE round_ts >= ? AND round_ts < ? GROUP BY ALL ORDER BY 1", [start, end])
    return DemoResult(
        leaderboard=lake.read("leaderboard"),
        checkpoints=lake.read_paths("checkpoints", [lake.partition_path("checkpoints", k) for k in period_keys]),
        seconds=time.perf_counter() - began,
        lake_root=lake.root,
        predictions=dict(window.iter_rows()),
    )


def format_result(result: DemoResult) -> str:
    counted = ", ".join(f"{count:,} {status}" for status, count in (result.predictions or {}).items()) or "none"
    lines = ["", f"Leaderboard of the lake {result.lake_root} (the demo window's predictions: {counted})"]
    board = result.leaderboard.select(pl.exclude("as_of", "ranking_key"))
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=160, tbl_hide_dataframe_shape=True):
        lines.append(str(board))
    for row in result.checkpoints.iter_rows(named=True):
        emission = json.loads(row["emission"])
        total = sum(r["reward_pct"] for r in emission["cruncher_rewards"])
        lines.append(f"\nCheckpoint {row['checkpoint_id']} ({row['period_start']:%Y-%m-%d} → {row['period_end']:%Y-%m-%d}), {row['status']}")
        entries = {e["cruncher_index"]: e for e in json.loads(row["entries"])}
        for reward in emission["cruncher_rewards"]:
            entry = entries.get(reward["cruncher_index"], {})
            lines.append(
                f"  rank {entry.get('rank', '?'):>2}  {entry.get('model_id', '?'):<16} cruncher #{reward['cruncher_index']:<3}"
                f" reward_pct {reward['reward_pct']:>13,}  ({100 * reward['reward_pct'] / FRAC64_MULTIPLIER:.2f} %)"
            )
        lines.append(f"  total {total:,} (must be {FRAC64_MULTIPLIER:,})")
    lines.append(f"\nDemo finished in {result.seconds:.1f} s")
    return "\n".join(lines)


def print_progress(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
