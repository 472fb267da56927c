"""The model runner service, run for real (`coordinator models serve` in a subprocess, each model
in its own worker process), against hostile models, manifest edits and replays."""

from __future__ import annotations

import time

import httpx
import pytest

from coordinator_dagster.contracts import default_contract
from coordinator_dagster.models.manifest import ManifestError, parse_manifest
from coordinator_dagster.models.runner import ModelSpec
from coordinator_dagster.models.service import ModelPool, PoolSettings
from tests.model_runner_process import HOSTILE, entry, group_members, hostile_folder, model_runner, payload, write_manifest
from tests.process_support import wait_for

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

H = HOSTILE
MOMENTUM = "coordinator_dagster.models.examples:MomentumTracker"

HOSTILE = {
    "sleeper": f"{H}:Sleeper",
    "raiser": f"{H}:Raiser",
    "stringer": f"{H}:Stringer",
    "naner": f"{H}:NaNer",
    "huge": f"{H}:Huge",
    "forger": f"{H}:Forger",
    "printer": f"{H}:Printer",
    "hog": f"{H}:Hog",
    "exiter": f"{H}:Exiter",
}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_every_hostile_model_costs_only_its_own_prediction(tmp_path):
    manifest = tmp_path / "models.json"
    good = [entry("momentum", MOMENTUM, 0), entry("counter", f"{H}:Counter", 1)]
    write_manifest(manifest, good + [entry(mid, ep, i + 2) for i, (mid, ep) in enumerate(HOSTILE.items())])
    # 256 MB of address space: room for a 50 MB answer's encoding, a quick stop for the hog. The
    # timeout is what the well-behaved models (and the hog, to fill its memory) get while the
    # printer and the forger load the machine: generous, as the machine may be loaded already.
    timeout = 5
    with model_runner(tmp_path, manifest, timeout=timeout, MODEL_MEMORY_LIMIT_MB="256", MODEL_UNHEALTHY_AFTER="3") as runner:
        runner.warm_up()
        pids = {mid: m["pid"] for mid, m in runner.models().items()}
        assert all(pids.values()) and len(set(pids.values())) == len(pids)  # one process per model

        # The sleeper sleeps an hour: the round (and this request) ending at all shows it waited
        # at most the timeout for everyone, however the models misbehave.
        [outcomes] = runner.predict(payload(hostile=True))
        assert {mid: o["status"] for mid, o in outcomes.items()} == {
            "momentum": "PENDING",
            "counter": "PENDING",
            "sleeper": "ABSENT",
            "raiser": "FAILED",
            "stringer": "FAILED",
            "naner": "FAILED",
            "huge": "FAILED",
            "forger": "FAILED",
            "printer": "ABSENT",
            "hog": "FAILED",
            "exiter": "ABSENT",
        }
        reasons = {mid: o["failed_reason"] or "" for mid, o in outcomes.items()}
        assert reasons["sleeper"] == f"no answer within {timeout} s (worker killed and restarted)"
        assert reasons["printer"] == f"no answer within {timeout} s (worker killed and restarted)"
        assert "ZeroDivisionError: hostile division" in reasons["raiser"]
        assert "output must be a mapping with a 'value', got str" in reasons["stringer"]
        assert "value must be a finite number" in reasons["naner"]
        assert reasons["huge"].startswith("oversized: answer of 524") and "65536-byte limit" in reasons["huge"]
        assert reasons["forger"].startswith("oversized: answer frame of 52428800 bytes")
        assert "MemoryError" in reasons["hog"]
        assert reasons["exiter"].startswith("worker exited with code 7")
        for mid in ("raiser", "stringer", "naner", "huge", "hog"):
            assert outcomes[mid]["value"] is None and outcomes[mid]["output"] is None
        # Killed or dead workers are gone; the ones that only failed keep their process.
        for mid in ("sleeper", "printer", "exiter", "forger"):
            assert not _alive(pids[mid]), mid
        after = runner.models()
        for mid in ("momentum", "counter", "raiser", "stringer", "naner", "huge", "hog"):
            assert after[mid]["pid"] == pids[mid], mid
        for mid in ("sleeper", "printer", "exiter", "forger"):
            assert after[mid]["pid"] not in (None, pids[mid]) and after[mid]["consecutive_failures"] == 1
            assert after[mid]["status"] == "healthy"

        # The next rounds work for everyone, on fresh workers where they were restarted (a round
        # that finds a fresh worker still loading has it ABSENT, so rounds go on until none is).
        nxt = runner.warm_up()
        assert {mid: o["status"] for mid, o in nxt.items()} == dict.fromkeys(nxt, "PENDING"), nxt
        # State persists in the workers that lived (warm-up, hostile and these rounds: at least
        # 3, the same for all of them) and starts over in the restarted ones.
        assert nxt["counter"]["value"] >= 3 + 101.0 and nxt["raiser"]["value"] == nxt["counter"]["value"]
        assert nxt["sleeper"]["value"] == 1 + 101.0
        assert runner.models()["sleeper"]["consecutive_failures"] == 0
        worker_pids = [m["pid"] for m in runner.models().values()]
    # Stopping the service stops every worker.
    assert wait_for(lambda: not [pid for pid in worker_pids if _alive(pid)], timeout=60), [pid for pid in worker_pids if _alive(pid)]


def test_a_model_that_keeps_dying_is_marked_unhealthy_and_retried_after_a_backoff():
    # The pool in-process with a clock the test moves: the backoff's length is checked exactly and
    # "still resting" cannot run out on a slow machine. The workers are real processes; the
    # round timeout is generous because nothing here sleeps (it only bounds a worker's loading).
    now = [1000.0]
    specs = [
        ModelSpec("momentum", "Momentum", "c-momentum", 0, MOMENTUM),
        ModelSpec("dier", "Dier", "c-dier", 1, f"{H}:AlwaysExits", str(hostile_folder())),
        ModelSpec("broken", "Broken", "c-broken", 2, f"{H}:BrokenImport", str(hostile_folder())),
    ]
    settings = PoolSettings(timeout_seconds=60.0, unhealthy_after=2, retry_seconds=4.0)
    pool = ModelPool(specs, settings, default_contract().output_type, clock=lambda: now[0])

    def round_() -> dict:
        # A worker still loading would be ABSENT "worker starting" (by design, it never holds a
        # round up): wait until every (re)started worker has loaded, so each round is the model's.
        pool.wait_loaded(60.0)
        return {o.model_id: o for o in pool.predict(payload(), 60, 60)}

    def described() -> dict:
        return {m["model_id"]: m for m in pool.describe()}

    try:
        for outcomes in (round_(), round_()):
            assert outcomes["momentum"].status == "PENDING"
            assert outcomes["dier"].status == "ABSENT" and outcomes["dier"].failed_reason.startswith("worker exited with code 9")
            assert outcomes["broken"].status == "FAILED"
            assert "model failed to load: ImportError: missing_dependency is not installed" in outcomes["broken"].failed_reason
        models = described()
        assert models["dier"]["status"] == "unhealthy" and models["dier"]["pid"] is None
        assert models["broken"]["status"] == "unhealthy" and models["momentum"]["status"] == "healthy"
        assert models["dier"]["retry_in_seconds"] == 4.0
        # Resting: no worker is started, the row says why; however long the round took.
        now[0] += 3.9
        resting = round_()
        assert resting["dier"].status == "ABSENT" and resting["dier"].failed_reason.startswith("unhealthy: 2 consecutive failures")
        assert resting["momentum"].status == "PENDING"
        assert described()["dier"]["pid"] is None
        # After the backoff: one fresh worker; failing again rests it for twice as long.
        now[0] += 0.1
        assert round_()["dier"].failed_reason == "unhealthy: retrying, worker restarted"
        again = round_()
        assert again["dier"].status == "ABSENT" and again["dier"].failed_reason.startswith("worker exited with code 9")
        models = described()
        assert models["dier"]["status"] == "unhealthy" and models["dier"]["retry_in_seconds"] == 8.0
    finally:
        pool.close()


def test_the_operator_lists_which_models_are_unhealthy(tmp_path, capsys):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("momentum", MOMENTUM, 0), entry("dier", f"{H}:AlwaysExits", 1), entry("broken", f"{H}:BrokenImport", 2)])
    with model_runner(tmp_path, manifest, timeout=60.0, MODEL_UNHEALTHY_AFTER="2", MODEL_RETRY_SECONDS="600") as runner:
        for _ in range(2):
            runner.warm_up()  # a round once every (re)started worker has loaded
        from coordinator_dagster.cli.main import main

        token_file = tmp_path / "token"
        token_file.write_text(runner.token + "\n")
        assert main(["models", "list", "--url", runner.url, "--token-file", str(token_file)]) == 0
        listing = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
        assert listing == {"momentum": "healthy", "dier": "unhealthy", "broken": "unhealthy"}


def test_manifest_edits_take_effect_at_the_next_round(tmp_path):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("a", f"{H}:Counter", 0), entry("b", f"{H}:Counter", 1)])
    with model_runner(tmp_path, manifest) as runner:
        runner.warm_up()
        [round2] = runner.predict(payload())
        assert round2["a"]["value"] == 2 + 101.0
        pid_a = runner.models()["a"]["pid"]

        # Add c, remove b; a is unchanged and keeps its worker and state.
        write_manifest(manifest, [entry("a", f"{H}:Counter", 0), entry("c", MOMENTUM, 2)])
        [round3] = runner.predict(payload())
        assert set(round3) == {"a", "c"}
        assert round3["a"]["value"] == 3 + 101.0 and runner.models()["a"]["pid"] == pid_a
        assert round3["c"]["status"] in ("PENDING", "ABSENT")  # ABSENT only while its worker loads
        assert set(runner.models()) == {"a", "c"}

        # A broken edit keeps the running models and says what is wrong.
        manifest.write_text("[{not json")
        time.sleep(0.01)
        [round4] = runner.predict(payload())
        assert set(round4) == {"a", "c"}
        health = runner.get("/health")
        assert "not valid JSON" in health["manifest_error"]

        # A changed entrypoint restarts that model (fresh state).
        write_manifest(manifest, [entry("a", f"{H}:Raiser", 0), entry("c", MOMENTUM, 2)])
        runner.warm_up()
        assert runner.models()["a"]["pid"] != pid_a and runner.get("/health")["manifest_error"] is None


def test_a_replay_session_has_fresh_models_and_leaves_live_state_alone(tmp_path):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("counter", f"{H}:Counter", 0), entry("momentum", MOMENTUM, 1)])
    history = [payload(closes=tuple(100.0 + i + k for k in range(20))) for i in range(5)]
    with model_runner(tmp_path, manifest) as runner:
        runner.warm_up()
        runner.predict(payload())

        def replay() -> list[dict]:
            created = httpx.post(runner.url + "/sessions", json={}, headers=runner.headers, timeout=30)
            assert created.status_code == 201
            sid = created.json()["session"]
            deadline = time.monotonic() + 120
            while True:  # the first round may find the fresh workers still loading
                [probe] = runner.predict(history[0], session=sid)
                if all(o["status"] == "PENDING" for o in probe.values()) or time.monotonic() > deadline:
                    break
                httpx.delete(f"{runner.url}/sessions/{sid}", headers=runner.headers, timeout=30)
                sid = httpx.post(runner.url + "/sessions", json={}, headers=runner.headers, timeout=30).json()["session"]
            results = [probe, *runner.predict(*history[1:], session=sid)]
            assert httpx.delete(f"{runner.url}/sessions/{sid}", headers=runner.headers, timeout=30).status_code == 200
            assert httpx.post(runner.url + "/predict", json={"session": sid, "inputs": []}, headers=runner.headers, timeout=30).status_code == 404
            return results

        first, second = replay(), replay()
        values = [[o[m]["value"] for m in ("counter", "momentum")] for o in first]
        assert values == [[o[m]["value"] for m in ("counter", "momentum")] for o in second]
        assert [v[0] for v in values] == [(i + 1) + (119.0 + i) for i in range(5)]  # fresh state: counts from 1
        # The live models saw none of it: their third round is their third.
        [live] = runner.predict(payload())
        assert live["counter"]["value"] == 3 + 101.0
        assert runner.get("/health")["sessions"] == 0


def test_bad_requests_get_clear_errors_and_change_nothing(tmp_path):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("counter", f"{H}:Counter", 0)])
    with model_runner(tmp_path, manifest) as runner:
        runner.warm_up()
        sid = httpx.post(runner.url + "/sessions", json={}, headers=runner.headers, timeout=30).json()["session"]
        one = '{"payload": {"subject": "BTC"}, "horizon_seconds": %s, "step_seconds": 60}'
        cases = [
            ("POST", "/predict", b"{not json", 400, "body is not JSON"),
            ("POST", "/predict", b'{"inputs": "x"}', 400, "needs 'inputs'"),
            ("POST", "/predict", b'{"inputs": [{"payload": {}}]}', 400, "inputs[0]"),
            ("POST", "/predict", b'{"session": "nope", "inputs": []}', 404, "no session 'nope'"),
            ("POST", "/predict", ('{"inputs": [%s]}' % (one % "1e999")).encode(), 400, "horizon_seconds must be a whole number of seconds, got inf"),
            ("POST", "/predict", ('{"inputs": [%s]}' % (one % "true")).encode(), 400, "horizon_seconds must be a number of seconds, got bool"),
            ("POST", "/predict", ('{"inputs": [%s]}' % (one % "-5")).encode(), 400, "horizon_seconds must be between 0"),
            ("POST", "/predict", ('{"inputs": [%s]}' % (one % '"60"')).encode(), 400, "got str"),
            ("POST", "/predict", b'{"inputs": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400, "nested 20001 levels deep"),
            ("POST", "/predict", ('{"session": "%s", "inputs": []}' % ("x" * 101)).encode(), 400, "at most 100 characters"),
            ("DELETE", "/sessions/nope", b"", 404, "no session"),
            ("GET", "/nowhere", b"", 404, "no route"),
        ]
        for method, path, body, status, message in cases:
            response = httpx.request(method, runner.url + path, content=body, headers=runner.headers, timeout=30)
            assert response.status_code == status, (path, body[:80], response.text)
            assert message in response.json()["error"], response.text
        # Without the token (or with a wrong one, or another scheme) nothing but readiness answers.
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {runner.token}"}):
            for method, path in (("GET", "/models"), ("POST", "/predict"), ("POST", "/sessions"), ("DELETE", f"/sessions/{sid}")):
                response = httpx.request(method, runner.url + path, json={"session": sid, "inputs": []}, headers=headers, timeout=30)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert "token" in response.json()["error"]
            assert httpx.get(runner.url + "/health", headers=headers, timeout=30).json() == {"status": "ok"}
        assert runner.get("/health")["sessions"] == 1  # the others' DELETE did not close it
        [after] = runner.predict(payload())
        assert after["counter"]["value"] == 2 + 101.0  # the bad requests reached no model


def test_sessions_and_workers_are_capped(tmp_path):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("counter", f"{H}:Counter", 0)])
    with model_runner(tmp_path, manifest, MODEL_RUNNER_MAX_SESSIONS="1", MODEL_RUNNER_MAX_WORKERS="2") as runner:

        def open_session() -> httpx.Response:
            return httpx.post(runner.url + "/sessions", json={}, headers=runner.headers, timeout=30)

        first = open_session()
        assert first.status_code == 201
        refused = open_session()
        assert refused.status_code == 429 and "1 sessions open, the cap is 1 (MODEL_RUNNER_MAX_SESSIONS)" in refused.json()["error"]
        httpx.delete(f"{runner.url}/sessions/{first.json()['session']}", headers=runner.headers, timeout=30)
        # Two live models: a session of two more would make four workers, over the cap of two.
        write_manifest(manifest, [entry("counter", f"{H}:Counter", 0), entry("other", f"{H}:Counter", 1)])
        refused = open_session()
        assert refused.status_code == 429 and "over its cap of 2 (MODEL_RUNNER_MAX_WORKERS)" in refused.json()["error"]
        assert runner.get("/health")["sessions"] == 0
        # A manifest over the cap keeps the running models and says why.
        write_manifest(manifest, [entry(f"m{i}", f"{H}:Counter", i) for i in range(3)])
        assert "3 models, over the runner's cap of 2 workers" in runner.get("/health")["manifest_error"]
        assert set(runner.models()) == {"counter", "other"}


def test_serve_needs_a_token(tmp_path):
    import subprocess

    from tests.model_runner_process import COORDINATOR

    env = {k: v for k, v in __import__("os").environ.items() if k != "MODEL_RUNNER_TOKEN"}
    result = subprocess.run([str(COORDINATOR), "models", "serve", "--port", "0"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and "no API token: set MODEL_RUNNER_TOKEN" in result.stderr


def test_serve_refuses_a_bad_manifest_at_start(tmp_path):
    import subprocess

    from tests.model_runner_process import COORDINATOR

    manifest = tmp_path / "models.json"
    manifest.write_text('[{"model_id": "a", "name": "A", "cruncher": "c", "cruncher_index": -1, "entrypoint": "x:Y"}]')
    result = subprocess.run([str(COORDINATOR), "models", "serve", "--port", "0", "--insecure-no-token", "--manifest", str(manifest)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cruncher_index must be a non-negative integer" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1}', "expected a JSON list"),
        ('[{"model_id": "a"}]', "missing keys ['name', 'cruncher', 'cruncher_index', 'entrypoint']"),
        ('[{"model_id": "a b", "name": "A", "cruncher": "c", "cruncher_index": 0, "entrypoint": "m:T"}]', "model_id 'a b'"),
        ('[{"model_id": "a", "name": "A", "cruncher": "c", "cruncher_index": 0, "entrypoint": "no-colon"}]', "is not 'module:attribute'"),
        ('[{"model_id": "a", "name": "A", "cruncher": "c", "cruncher_index": 0, "entrypoint": "m:T", "extra": 1}]', "unknown keys ['extra']"),
        ('[{"model_id": "a", "name": "A", "cruncher": "c", "cruncher_index": 0, "entrypoint": "m:T"},'
         ' {"model_id": "a", "name": "B", "cruncher": "d", "cruncher_index": 1, "entrypoint": "m:T"}]', "duplicate model ids ['a']"),
    ],
)
def test_manifest_errors_name_the_entry_and_the_problem(text, message):
    with pytest.raises(ManifestError, match=None) as raised:
        parse_manifest(text, "m.json")
    assert message in str(raised.value) and "m.json" in str(raised.value)


def test_models_do_not_see_the_nodes_secrets(tmp_path):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("snoop", f"{H}:EnvSnooper", 0)])
    with model_runner(tmp_path, manifest, PYTH_API_KEY="secret-key") as runner:
        assert runner.warm_up()["snoop"]["value"] == 0.0


def test_a_model_folder_is_importable_by_its_worker(tmp_path):
    folder = tmp_path / "models" / "folder_model"
    folder.mkdir(parents=True)
    (folder / "folder_tracker.py").write_text(
        "from coordinator_dagster.models.tracker import TrackerBase\n"
        "class Tracker(TrackerBase):\n"
        "    def predict(self, subject, horizon, step):\n"
        "        return {'value': 42.0}\n"
    )
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("folder", "folder_tracker:Tracker", 0, path="models/folder_model")])
    with model_runner(tmp_path, manifest) as runner:
        outcomes = runner.warm_up()
        assert outcomes["folder"]["status"] == "PENDING" and outcomes["folder"]["value"] == 42.0
        assert runner.models()["folder"]["path"] == str(folder.resolve())
        pgid = runner.proc.pid
    assert not group_members(pgid)


def test_forged_and_deeply_nested_frames_fail_only_their_own_model(tmp_path):
    manifest = tmp_path / "models.json"
    forgers = {"deep": "DeepNester", "list": "ListForger", "ms": "MsForger", "deepframe": "DeepFrameForger"}
    entries = [entry("counter", f"{H}:Counter", 0)] + [entry(mid, f"{H}:{cls}", i + 1) for i, (mid, cls) in enumerate(forgers.items())]
    write_manifest(manifest, entries)
    with model_runner(tmp_path, manifest, timeout=2.0, MODEL_UNHEALTHY_AFTER="3") as runner:
        runner.warm_up()
        [outcomes] = runner.predict(payload(hostile=True))  # a 200: the request itself never fails
        assert {mid: o["status"] for mid, o in outcomes.items()} == {"counter": "PENDING", **dict.fromkeys(forgers, "FAILED")}
        reasons = {mid: outcomes[mid]["failed_reason"] for mid in forgers}
        assert reasons["deep"].startswith("protocol error: answer nested 15002 levels deep, over the limit of 64")
        assert reasons["list"] == "protocol error: frame is a JSON list, not an object (worker restarted)"
        assert reasons["ms"] == "protocol error: 'ms' must be a non-negative number, got 'x' (worker restarted)"
        assert reasons["deepframe"].startswith("protocol error: frame nested 15000 levels deep")
        models = runner.models()
        for mid in forgers:  # counted towards unhealthy, worker replaced
            assert models[mid]["consecutive_failures"] == 1 and models[mid]["last_error"] == reasons[mid]
        # The next round is normal for everyone (the forgers on fresh workers).
        nxt = runner.warm_up()
        assert {mid: o["status"] for mid, o in nxt.items()} == dict.fromkeys(nxt, "PENDING"), nxt
        assert nxt["counter"]["value"] == 3 + 101.0


def test_a_model_still_loading_is_absent_without_delaying_the_round(tmp_path):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, [entry("counter", f"{H}:Counter", 0)])
    # A per-model timeout far beyond the client's 120 s request timeout: a round that waited for
    # the loading model (which takes longer still) would fail the request instead of answering.
    with model_runner(tmp_path, manifest, timeout=600.0) as runner:
        runner.warm_up()
        write_manifest(manifest, [entry("counter", f"{H}:Counter", 0), entry("slow", f"{H}:SlowLoader", 1)])
        for round_number in (2, 3):
            [outcomes] = runner.predict(payload())
            assert outcomes["counter"]["status"] == "PENDING" and outcomes["counter"]["value"] == round_number + 101.0
            assert outcomes["slow"]["status"] == "ABSENT"
            assert outcomes["slow"]["failed_reason"] == "worker starting: model still loading"
        slow = runner.models()["slow"]
        assert slow["status"] == "healthy" and slow["consecutive_failures"] == 0 and slow["pid"]  # loading is no failure
