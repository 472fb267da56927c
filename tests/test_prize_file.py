"""The prize file `coordinator payout` writes (issue 20): its lines, amounts that add up to exactly
the pool (property test, 1 to 10,000 models), and the export ledger's refusals."""

from __future__ import annotations

import datetime as dt
import json
import random

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from coordinator_dagster import checkpoint_review as review
from coordinator_dagster.cli.main import main
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring import payouts
from tests.api_fixtures import CHECKPOINT_KEYS, seed_lake

END = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
OLD, NEW = (f"CKP-{key}" for key in CHECKPOINT_KEYS)  # OLD is SUBMITTED by the seed, NEW is PENDING


def checkpoint(shares: list[int]) -> tuple[dict, list[dict]]:
    entries = [{"rank": i + 1, "model_id": f"m{i}", "cruncher": f"c{i}", "cruncher_index": i} for i in range(len(shares))]
    emission = {"cruncher_rewards": [{"cruncher_index": i, "reward_pct": s} for i, s in enumerate(shares)], "retained_pct": 0}
    return emission, entries


def test_prize_file_worked_example():
    emission, entries = checkpoint([600_000_000, 400_000_000])
    lines = payouts.prize_file(emission, entries, 1_000_000, END)
    assert lines == [{"timestamp": 1795305600000, "model": "m0", "prize": 600_000}, {"timestamp": 1795305600000, "model": "m1", "prize": 400_000}]
    assert payouts.prize_file_text(lines).splitlines()[0] == '{"timestamp": 1795305600000, "model": "m0", "prize": 600000}'
    # Thirds of 100: floors 33 each, the unit left over to the largest remainder (the first).
    emission, entries = checkpoint([333_333_334, 333_333_333, 333_333_333])
    assert [line["prize"] for line in payouts.prize_file(emission, entries, 100, END)] == [34, 33, 33]
    with pytest.raises(ValueError, match="negative"):
        payouts.prize_file(emission, entries, -1, END)


@st.composite
def splits(draw):
    """A model count from 1 to 10,000 and frac64 shares over them summing to 1,000,000,000."""
    count = draw(st.integers(1, 10_000))
    rng = random.Random(draw(st.integers(0, 2**32)))
    cuts = sorted(rng.randrange(FRAC64_MULTIPLIER + 1) for _ in range(count - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, FRAC64_MULTIPLIER], strict=True)]


@settings(max_examples=40, deadline=None)
@given(shares=splits(), pool=st.integers(0, 10**18))
@example(shares=[FRAC64_MULTIPLIER], pool=1)
@example(shares=[100_000] * 10_000, pool=9_999)
def test_prize_file_amounts_add_up_to_exactly_the_pool(shares, pool):
    emission, entries = checkpoint(shares)
    lines = payouts.prize_file(emission, entries, pool, END)
    assert len(lines) == len(shares)
    assert sum(line["prize"] for line in lines) == pool
    for line, share in zip(lines, shares, strict=True):  # each within one unit of its exact share
        exact = pool * share / FRAC64_MULTIPLIER
        assert line["prize"] >= 0 and abs(line["prize"] - exact) < 1 + 1e-6 * max(1.0, exact)


def confirm(lake, cid: str) -> None:
    event = {"checkpoint_id": cid, "event_at": dt.datetime.now(dt.timezone.utc), "status": "SUBMITTED", "tx_hash": "sig", "caller": "op"}
    lake.append_event("checkpoint_events", pl.DataFrame([event], schema=schemas.CHECKPOINT_EVENTS))


def test_a_second_export_of_a_confirmed_checkpoint_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHECKPOINT_APPROVAL", "off")
    lake = seed_lake(tmp_path / "home").lake
    out = tmp_path / "prizes" / "ckp.jsonl"
    args = ["payout", NEW, "--pool", "1000000", "--out", str(out), "--home", str(lake.home)]
    assert main(args) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(line["prize"] for line in lines) == 1_000_000 and [set(line) for line in lines] == [{"timestamp", "model", "prize"}] * len(lines)
    assert main(args) == 0  # still PENDING: exported again (e.g. a corrected pool), recorded again
    confirm(lake, NEW)
    out.unlink()
    assert main(args) == 1
    assert "is SUBMITTED: its prizes are not exported twice" in capsys.readouterr().err
    assert not out.exists()
    ledger = review.export_events(lake, NEW)
    assert ledger.height == 2 and set(ledger["pool_amount"]) == {1_000_000} and set(ledger["emission_hash"]) == {
        review.emission_hash(lake.query("SELECT emission FROM checkpoints WHERE checkpoint_id = ?", [NEW])["emission"][0])
    }


def test_with_approval_required_only_the_approved_emission_is_exported(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHECKPOINT_APPROVAL", "required")
    lake = seed_lake(tmp_path / "home").lake
    out = tmp_path / "ckp.jsonl"
    args = ["payout", NEW, "--pool", "1000", "--out", str(out), "--home", str(lake.home)]
    assert main(args) == 1 and "cannot be exported: it has not been approved" in capsys.readouterr().err
    digest = review.emission_hash(lake.query("SELECT emission FROM checkpoints WHERE checkpoint_id = ?", [NEW])["emission"][0])
    assert review.record_approval(lake, NEW, digest, "op", dt.datetime.now(dt.timezone.utc))
    assert main(args) == 0 and out.is_file()
    assert main(["payout", "CKP-nope", "--pool", "1", "--out", str(out), "--home", str(lake.home)]) == 1
