"""Several model runner services (MODEL_RUNNER_URLS): each serves a share of the manifest assigned
by the node (rendezvous hashing), all are called at once, and one that is down makes only its own
models ABSENT. Two real `coordinator models serve` on loopback."""

from __future__ import annotations

import contextlib
import secrets

import pytest

from coordinator_dagster.contracts import default_contract
from coordinator_dagster.models.client import SharedRound, open_round
from coordinator_dagster.models.shares import owner, share
from tests.model_runner_process import HOSTILE, entry, model_runner, payload, stop, write_manifest

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

IDS = [f"model-{i}" for i in range(40)]


def test_each_model_has_one_runner_and_keeps_it_unless_its_runner_goes():
    two, three = ["http://a:8100", "http://b:8100"], ["http://a:8100", "http://b:8100", "http://c:8100"]
    shares = [share(IDS, two, i) for i in range(2)]
    assert sorted(shares[0] + shares[1]) == sorted(IDS) and not set(shares[0]) & set(shares[1])
    assert all(shares) and share(IDS, two, 0) == shares[0]  # a pure function: the same after a restart
    # Adding a runner moves only the models it wins; removing it moves only those back.
    moved = [m for m in IDS if two[owner(m, two)] != three[owner(m, three)]]
    assert moved == share(IDS, three, 2) and 0 < len(moved) < len(IDS) / 2
    # The runners' order in the list does not matter.
    assert {m: two[owner(m, two)] for m in IDS} == {m: two[::-1][owner(m, two[::-1])] for m in IDS}


def _open(urls: list[str], token: str) -> SharedRound:
    round_ = open_round(",".join(urls), default_contract().output_type, replay=False, timeout_seconds=30.0, token=token)
    assert isinstance(round_, SharedRound)
    return round_


def _round(urls: list[str], token: str) -> dict[str, dict]:
    shared = _open(urls, token)
    try:
        return {o.model_id: o for o in shared.predict_round(payload(), 60, 60)}
    finally:
        shared.close()


def test_two_runners_serve_disjoint_shares_and_one_down_costs_only_its_models(tmp_path):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry(f"m{i}", f"{HOSTILE}:Counter", i) for i in range(8)])
    token = secrets.token_urlsafe(16)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(model_runner(tmp_path / "a", manifest, token=token))
        b = stack.enter_context(model_runner(tmp_path / "b", manifest, token=token))
        urls = [a.url, b.url]
        ids = [f"m{i}" for i in range(8)]
        first = _round(urls, token)
        # Each runner now runs exactly its share; together, every model once.
        a.wait_loaded()
        b.wait_loaded()
        assert list(a.models()) == share(ids, urls, 0) and list(b.models()) == share(ids, urls, 1)
        assert a.get("/models")["assignment"] == {"runners": urls, "index": 0}
        assert set(first) == set(ids)
        pids = {**{m: v["pid"] for m, v in a.models().items()}, **{m: v["pid"] for m, v in b.models().items()}}
        # Rounds until every model has answered once (its worker may have been loading at first).
        outcomes = _round(urls, token)
        while any(o.status != "PENDING" for o in outcomes.values()):
            a.wait_loaded()
            b.wait_loaded()
            outcomes = _round(urls, token)
        seen = {m: o.value - 101.0 for m, o in outcomes.items()}
        # A new run keeps the assignment and the workers (and their state).
        again = _round(urls, token)
        assert {m: o.value - 101.0 for m, o in again.items()} == {m: n + 1 for m, n in seen.items()}
        assert {**{m: v["pid"] for m, v in a.models().items()}, **{m: v["pid"] for m, v in b.models().items()}} == pids

        # Runner b goes down: only its models are ABSENT, a's go on.
        stop(b.proc)
        down = _round(urls, token)
        for model_id, outcome in down.items():
            if model_id in share(ids, urls, 1):
                assert outcome.status == "ABSENT" and outcome.failed_reason.startswith(f"model runner {b.url} unavailable"), outcome
            else:
                assert outcome.status == "PENDING" and outcome.value - 101.0 == seen[model_id] + 2


def test_a_runner_added_to_the_list_takes_over_only_its_share(tmp_path):
    manifest = tmp_path / "models.json"
    ids = [f"m{i}" for i in range(8)]
    write_manifest(manifest, [entry(m, f"{HOSTILE}:Counter", i) for i, m in enumerate(ids)])
    token = secrets.token_urlsafe(16)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with model_runner(tmp_path / "a", manifest, token=token) as a, model_runner(tmp_path / "b", manifest, token=token) as b:
        a.warm_up()  # alone, unassigned: a runs every model
        before = {m: v["pid"] for m, v in a.models().items()}
        assert list(before) == ids
        urls = [a.url, b.url]
        _open(urls, token).close()
        kept = share(ids, urls, 0)
        assert list(a.models()) == kept and list(b.models()) == share(ids, urls, 1)
        assert {m: v["pid"] for m, v in a.models().items()} == {m: before[m] for m in kept}  # not restarted
