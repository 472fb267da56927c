#!/usr/bin/env python3
"""Screenshots of the checkpoint review in the Dagster UI, for docs/operations.md.

    .venv/bin/python scripts/checkpoint_review_screenshots.py --out docs/img

Builds two daily checkpoints (2026-11-19 and 2026-11-20, two hours of rounds each, synthetic feed,
the three example models) in-process into a temporary COORDINATOR_HOME and DAGSTER_HOME, with
their audit bundle, then serves that instance with `dagster-webserver` on loopback (no daemon:
nothing else runs) and captures with headless Chromium driven by Selenium (/usr/bin/chromium,
/usr/bin/chromedriver; scripts/install_browser.sh installs them):

- checkpoint-diff.png: the 2026-11-20 materialization's `diff` against 2026-11-19;
- checkpoint-checks.png: the checkpoint's asset checks, `ranking_reproducible` among them;
- approve-launchpad.png: approve_checkpoint_job's Launchpad with the reviewed hash filled in.

Everything it starts is stopped before it exits; the temporary folders are removed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1500,950",
)
NOW = dt.datetime(2026, 11, 21, 4, tzinfo=dt.timezone.utc)
HOURS = {"2026-11-19": ("2026-11-19-22:00", "2026-11-19-23:00"), "2026-11-20": ("2026-11-20-00:00", "2026-11-20-01:00")}


def build(home: Path) -> str:
    """Materialize both checkpoints into DAGSTER_HOME's instance; the 2026-11-20 emission hash."""
    import dagster as dg

    from coordinator_dagster.definitions import build_defs
    from coordinator_dagster.lake.store import Lake
    from resources import ClockResource

    defs = build_defs(resource_overrides={"clock": ClockResource(fixed_now=NOW.isoformat())})
    instance = dg.DagsterInstance.get()
    assets = list(defs.assets)

    def run(selection, key=None, tags=None):
        dg.materialize(assets, selection=selection, resources=defs.resources, partition_key=key, tags=tags, instance=instance)

    run(["feed_records"], tags={"dagster/asset_partition_range_start": "2026-11-19-21:00", "dagster/asset_partition_range_end": "2026-11-20-02:00"})
    for hours in HOURS.values():
        for hour in hours:
            run(["inputs", "predictions", "scores", "snapshots"], hour)
    for day in HOURS:
        run(["checkpoints"], day)
    run(["audit_bundle"], "2026-11-20")
    lake = Lake(home)
    return lake.read("checkpoint_reviews", "2026-11-20")["emission_hash"][0]


def wait(browser, condition, what: str, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.25).until(condition)
    except Exception as exc:
        browser.save_screenshot("/tmp/review-shots-failure.png")
        raise SystemExit(f"timed out waiting for {what} at {browser.current_url}: {exc!r}") from None


OPAQUE = "for (let e = arguments[0]; e; e = e.parentElement) { if (getComputedStyle(e).opacity !== '1') return false; } return true;"


def capture(url: str, out: Path, emission_hash: str, profile: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        # The asset's overview shows its newest materialization: the 2026-11-20 checkpoint.
        browser.get(f"{url}/assets/checkpoints")
        # The metadata table draws only the rows in view: filter it down to the diff.
        search = wait(browser, lambda b: next(iter(b.find_elements(By.XPATH, "//input[@placeholder='Filter metadata keys']")), None), "the metadata filter")
        search.send_keys("diff")
        # Markdown metadata is drawn inline: the diff's table in its row.
        wait(browser, lambda b: b.find_elements(By.XPATH, "//tr[td[normalize-space()='diff']]//table"), "the diff table")
        time.sleep(1)
        browser.save_screenshot(str(out / "checkpoint-diff.png"))

        browser.get(f"{url}/assets/checkpoints?view=checks")
        check = wait(browser, lambda b: next(iter(b.find_elements(By.XPATH, "//*[normalize-space(text())='ranking_reproducible']")), None), "the checks")
        check.click()
        wait(browser, lambda b: b.find_elements(By.XPATH, "//*[normalize-space(text())='first_difference']"), "the check's metadata")
        time.sleep(1.5)  # the checks' status icons load after their names
        browser.save_screenshot(str(out / "checkpoint-checks.png"))

        # Through the UI's own links: the Jobs list, the job, its Launchpad tab.
        browser.get(f"{url}/jobs")
        wait(browser, lambda b: next(iter(b.find_elements(By.XPATH, "//a[normalize-space()='approve_checkpoint_job']")), None), "the job's link").click()
        wait(browser, lambda b: next(iter(b.find_elements(By.XPATH, "//a[normalize-space()='Launchpad']")), None), "the Launchpad tab").click()
        editor = wait(browser, lambda b: next(iter(b.find_elements(By.CSS_SELECTOR, ".CodeMirror")), None), "the Launchpad's editor")
        config = f"ops:\\n  approve_checkpoint:\\n    config:\\n      checkpoint_id: CKP-2026-11-20\\n      emission_hash: {emission_hash}\\n"
        browser.execute_script(f"arguments[0].CodeMirror.setValue('{config}')", editor)
        time.sleep(2)  # the Launchpad validates the config against the job's schema
        browser.save_screenshot(str(out / "approve-launchpad.png"))
    finally:
        browser.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/img", help="folder for the PNGs")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="review-shots-"))
    home, dagster_home = base / "coordinator_home", base / "dagster_home"
    home.mkdir()
    dagster_home.mkdir()
    shutil.copy(ROOT / "scripts" / "dagster.yaml", dagster_home / "dagster.yaml")
    keep = ("COORDINATOR_", "CRUNCH_", "FEED_", "MODEL", "PYTH_", "SYNTHETIC_", "DAGSTER_", "API_", "CHECKPOINT_", "PARTITIONS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(keep)}
    env.update(
        COORDINATOR_HOME=str(home), DAGSTER_HOME=str(dagster_home), FEED_SOURCE="synthetic", CHECKPOINT_INTERVAL_SECONDS="86400",
        CHECKPOINT_APPROVAL="required", PARTITIONS_START="2026-11-19T21:00:00",
    )
    os.environ.clear()
    os.environ.update(env)
    proc = None
    try:
        emission_hash = build(home)
        port = 3900 + os.getpid() % 90
        webserver = Path(sys.executable).parent / "dagster-webserver"
        with open(base / "webserver.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "launch.py"), str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        import httpx
        from dagster_graphql import DagsterGraphQLClient

        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"dagster-webserver did not start: {(base / 'webserver.log').read_text()[-3000:]}")
            time.sleep(0.5)
        DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=30)._execute("mutation SetNuxSeen { setNuxSeen }")
        capture(url, out, emission_hash, base / "chromium-profile")
        for name in ("checkpoint-diff.png", "checkpoint-checks.png", "approve-launchpad.png"):
            print(f"{out / name}: {(out / name).stat().st_size:,} bytes")
        return 0
    finally:
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
