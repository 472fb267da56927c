"""The operator scripts: scripts/launch.py, scripts/run.sh (start/stop logic with stand-in commands),
the dagster.yaml template, and `make test`'s handling of pytest's "no tests collected"."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.process_support import free_port as _free_port
from tests.process_support import wait_for as _wait_for

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "scripts" / "launch.py"
RUN_SH = ROOT / "scripts" / "run.sh"

PROBE = "import os, signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())"


def _ignore_int_term() -> None:
    # What a background job inherits in some sandboxes and CI runners.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _run(args: list[str]) -> str:
    return subprocess.run(args, preexec_fn=_ignore_int_term, capture_output=True, text=True, timeout=30, check=True).stdout.split()


def test_launch_resets_ignored_signals_and_starts_a_session():
    assert _run([sys.executable, "-c", PROBE]) == ["False", "False", "False", "False"]
    assert _run([sys.executable, str(LAUNCH), sys.executable, "-c", PROBE]) == ["True", "True", "True", "True"]


def test_launch_no_setsid_keeps_the_callers_group(tmp_path):
    pidfile = tmp_path / "pid"
    out = _run([sys.executable, str(LAUNCH), "--no-setsid", "--pidfile", str(pidfile), sys.executable, "-c", PROBE + "; print(os.getpid())"])
    assert out[:4] == ["True", "True", "False", "False"]
    assert pidfile.read_text().strip() == out[4]  # the pid survives exec


def test_launch_reports_a_missing_command():
    result = subprocess.run([sys.executable, str(LAUNCH), "no-such-command-xyz"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 127
    assert "cannot run 'no-such-command-xyz'" in result.stderr


def test_dagster_yaml_template_selects_the_default_run_coordinator(tmp_path):
    import dagster as dg
    from dagster._core.run_coordinator import DefaultRunCoordinator

    (tmp_path / "dagster.yaml").write_text((ROOT / "scripts" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, DefaultRunCoordinator)
        assert instance.get_settings("telemetry") == {"enabled": False}
        assert instance.get_settings("nux") == {"enabled": False}
        assert instance.get_settings("sensors") == {"use_threads": True, "num_workers": 2}


def test_dagster_yaml_template_keeps_debug_run_logs_out_of_the_terminal(tmp_path, monkeypatch, capfd):
    import dagster as dg

    from coordinator_dagster import known_warnings

    @dg.asset
    def probe(context) -> None:
        context.log.info("probe says hello")

    (tmp_path / "dagster.yaml").write_text((ROOT / "scripts" / "dagster.yaml").read_text())
    monkeypatch.setenv("COORDINATOR_HOME", str(tmp_path / "home"))
    known_warnings.accept()  # as the code location does
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert dg.materialize([probe], instance=instance).success
        events = {entry.dagster_event_type for entry in instance.all_logs(instance.get_runs()[0].run_id)}
    terminal = capfd.readouterr().err
    assert "probe says hello" in terminal and " - DEBUG - " not in terminal and "Warning" not in terminal
    run_log = (tmp_path / "home" / "logs" / "runs.log").read_text()
    assert "DEBUG" in run_log and "STEP_START" in run_log and "ASSET_MATERIALIZATION" in run_log and "probe says hello" in run_log
    assert dg.DagsterEventType.STEP_START in events  # the UI's event log keeps every event


def test_the_code_location_loads_without_warnings():
    env = {k: v for k, v in os.environ.items() if k not in ("FEED_SOURCE", "CRUNCH_CONFIG_MODULE", "PYTHONWARNINGS")}
    done = subprocess.run([sys.executable, "-W", "default", "-c", "import coordinator_dagster.code_location"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr


# ---- run.sh with stand-in commands ----------------------------------------------------------

FAKE = textwrap.dedent(
    """
    import os, subprocess, sys, time
    # A child in the same process group, like dagster dev's webserver/daemon or a run worker.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(sys.argv[1], "w") as fh:
        fh.write(f"{os.getpid()} {child.pid}")
    # Runs until a file appears (the test says when), or for a number of seconds.
    if sys.argv[2].startswith("/"):
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.05)
    else:
        time.sleep(float(sys.argv[2]))
    sys.exit(int(sys.argv[3]))
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _run_sh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    fake = tmp_path / "fake.py"
    fake.write_text(FAKE)
    env = {
        **os.environ,
        "RUN_SKIP_BOOTSTRAP": "1",
        "COORDINATOR_HOME": str(tmp_path / "home"),
        "DAGSTER_PORT": str(_free_port()),
        "API_PORT": str(_free_port()),
        "RUN_API_CMD": f"{sys.executable} {fake} {tmp_path / 'api.pids'} 600 0",
        "RUN_DAGSTER_CMD": f"{sys.executable} {fake} {tmp_path / 'dagster.pids'} 600 0",
        "MODEL_RUNNER_PORT": str(_free_port()),
        "RUN_MODELS_CMD": f"{sys.executable} {fake} {tmp_path / 'models.pids'} 600 0",
        "FEED_LIVE": "1",
        "RUN_FEEDS_CMD": f"{sys.executable} {fake} {tmp_path / 'feeds.pids'} 600 0",
    }
    for var in ("DAGSTER_HOME", "MODEL_RUNNER_URL"):
        env.pop(var, None)
    return {**env, **extra}


def _start_run_sh(tmp_path: Path, dagster_until: str, dagster_exit: int):
    """run.sh with stand-ins; the fake `dagster dev` runs until the file `dagster_until` appears
    (or for that many seconds), then exits with `dagster_exit`."""
    fake, home = tmp_path / "fake.py", tmp_path / "home"
    env = _run_sh_env(tmp_path, RUN_DAGSTER_CMD=f"{sys.executable} {fake} {tmp_path / 'dagster.pids'} {dagster_until} {dagster_exit}")
    proc = subprocess.Popen(
        [sys.executable, str(LAUNCH), "bash", str(RUN_SH)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    pidfiles = [tmp_path / f"{name}.pids" for name in ("api", "dagster", "models", "feeds")]
    assert _wait_for(lambda: all(p.exists() and p.read_text() for p in pidfiles), 120), "stand-ins did not start"
    pids = [int(pid) for p in pidfiles for pid in p.read_text().split()]
    return proc, home, pids


def _stop(proc: subprocess.Popen, pids: list[int]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def test_run_sh_stops_everything_on_sigterm(tmp_path):
    proc, home, pids = _start_run_sh(tmp_path, dagster_until="600", dagster_exit=0)
    try:
        assert all(_alive(pid) for pid in pids)
        assert all((home / "run" / f"{name}.pid").exists() for name in ("api", "dagster", "models", "feeds"))
        generated = (home / "dagster_home" / "dagster.yaml").read_text()
        assert "class: DefaultRunCoordinator" in generated
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "stopped" in out
        assert _wait_for(lambda: not any(_alive(pid) for pid in pids), 60), f"left running: {[p for p in pids if _alive(p)]}"
        assert not list((home / "run").glob("*.pid"))
    finally:
        _stop(proc, pids)


def test_run_sh_stops_the_api_when_dagster_dev_exits(tmp_path):
    exit_now = tmp_path / "dagster.exit"
    proc, _, pids = _start_run_sh(tmp_path, dagster_until=str(exit_now), dagster_exit=3)
    try:
        exit_now.touch()  # only once every stand-in runs: dagster dev exits with status 3
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 3, out
        assert "dagster dev exited (status 3)" in out
        assert _wait_for(lambda: not any(_alive(pid) for pid in pids), 60), f"left running: {[p for p in pids if _alive(p)]}"
    finally:
        _stop(proc, pids)


def test_run_sh_refuses_a_bad_setting_before_starting_anything(tmp_path):
    env = _run_sh_env(tmp_path, FEED_SOURCE="bogus")
    result = subprocess.run([sys.executable, str(LAUNCH), "bash", str(RUN_SH)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FEED_SOURCE must be one of synthetic, ccxt, pyth, got 'bogus'" in result.stderr
    assert "fix the setting above" in result.stderr
    assert not list(tmp_path.glob("*.pids")), "a child was started"
    assert "ready" not in result.stdout


DIES = textwrap.dedent(
    """
    import sys, time
    time.sleep(0.5)
    print("api: cannot bind the lake: the reason is here", flush=True)
    sys.exit(3)
    """
)


def test_run_sh_names_a_child_that_dies_during_start_up_and_shows_its_log(tmp_path):
    dies = tmp_path / "dies.py"
    dies.write_text(DIES)
    # No settings check here: the child must die on its own, as one the check cannot foresee.
    env = _run_sh_env(tmp_path, RUN_API_CMD=f"{sys.executable} {dies}", RUN_SKIP_SETTINGS_CHECK="1")
    proc = subprocess.Popen([sys.executable, str(LAUNCH), "bash", str(RUN_SH)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pidfiles = [tmp_path / f"{name}.pids" for name in ("dagster", "models", "feeds")]
    try:
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 1, out
        assert "ERROR: the report API exited (status 3) during start-up. Last lines of" in out
        assert "    api: cannot bind the lake: the reason is here" in out
        pids = [int(pid) for p in pidfiles if p.exists() for pid in p.read_text().split()]
        assert _wait_for(lambda: not any(_alive(pid) for pid in pids), 10), f"left running: {[p for p in pids if _alive(p)]}"
    finally:
        _stop(proc, [int(pid) for p in pidfiles if p.exists() for pid in p.read_text().split()])


def test_run_sh_refuses_an_unknown_feed_live_value(tmp_path):
    env = {**os.environ, "RUN_SKIP_BOOTSTRAP": "1", "COORDINATOR_HOME": str(tmp_path), "FEED_LIVE": "yes"}
    result = subprocess.run(["bash", str(RUN_SH)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "FEED_LIVE must be 0 or 1" in result.stderr


def test_run_sh_refuses_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {**os.environ, "RUN_SKIP_BOOTSTRAP": "1", "COORDINATOR_HOME": str(tmp_path), "DAGSTER_PORT": str(busy.getsockname()[1])}
        result = subprocess.run(["bash", str(RUN_SH)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "already in use" in result.stderr


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs the bootstrapped .venv")
def test_make_test_fails_when_pytest_collects_nothing():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "PYTEST_"))}
    # -o install: never re-sync the .venv this very test session runs in.
    result = subprocess.run(
        ["make", "-s", "-o", "install", "test", "PYTEST_ARGS=-p no:cacheprovider tests/test_scripts.py -k no_such_test_xyz"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "pytest collected no tests (exit 5)" in result.stderr
