#!/usr/bin/env python3
"""Screenshots of CrunchDAO's dashboard (coordinator-webapp, `apps/starter`) served by this node.

    python scripts/dashboard_screenshots.py --webapp PATH/TO/coordinator-webapp --out shots/

1. copies the given webapp checkout into a build folder (the checkout is never modified), links
   the stand-ins of its private UI packages (`scripts/dashboard_stubs/`) in place of
   `@crunch-ui/*` and `@crunchdao/chart`, and installs it with pnpm (from the public registry);
2. builds a demo lake (`coordinator demo`) unless `--home` names one, and starts `coordinator
   api` on it on loopback;
3. builds the starter app (`next build`) pointed at that API and starts it (`next start`);
4. opens the leaderboard, metrics, feeds and settings pages in headless Chromium (Debian's
   /usr/bin/chromium, see scripts/install_browser.sh) and saves one PNG per page in `--out`.

The starter app has no checkpoint page: the platform app (`apps/platform`) lists a node's
checkpoints behind its sign-in and on-chain providers. So the build also carries an extra
starter page, `/checkpoints`, that renders the platform's own `NodeCheckpointsTable` (copied
from the checkout at build time, with the two files it imports) over this node's
`/reports/checkpoints`, and it is captured with the others.

Needs node ≥ 20 and network access to the npm registry (pnpm is run through `npx`). Every process
it starts is stopped on exit. Prints the PNG paths.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUBS = ROOT / "scripts" / "dashboard_stubs"
# package name -> stand-in folder
STAND_INS = {
    "@crunch-ui/core": "crunch-ui-core",
    "@crunch-ui/icons": "crunch-ui-icons",
    "@crunch-ui/utils": "crunch-ui-utils",
    "@crunch-ui/tailwind-config": "crunch-ui-tailwind-config",
    "@crunchdao/chart": "crunchdao-chart",
}
# Versions the stand-ins resolve for their own imports; the dashboard pins the same majors.
STAND_IN_DEPENDENCIES = {"react-hook-form": "7.71.2", "@tanstack/react-table": "^8.21.3", "react": "^19.2.3"}
PNPM = ["npx", "--yes", "pnpm@10.28.0"]
# page -> window height: the metrics page stacks every widget.
PAGES = {"leaderboard": 1400, "metrics": 3600, "feeds": 1800, "settings": 900, "checkpoints": 700}
# The platform app's checkpoint table and what it imports: (file in the checkout, file in the starter).
PLATFORM_FILES = (
    ("apps/platform/src/modules/checkpoint/ui/nodeCheckpointsTable.tsx", "src/modules/checkpoint/ui/nodeCheckpointsTable.tsx"),
    ("apps/platform/src/modules/checkpoint/domain/nodeTypes.ts", "src/modules/checkpoint/domain/nodeTypes.ts"),
    ("apps/platform/src/utils/formatDate.ts", "src/utils/formatDate.ts"),
)
# The extra starter page: the platform's table fed as the platform feeds it (`GET
# /reports/checkpoints`, here through the starter's `/api` rewrite to this node), with a no-op
# settle action so its action column shows as it does there.
CHECKPOINTS_PAGE = """"use client";

import { useQuery } from "@tanstack/react-query";
import apiClient from "@/utils/api/apiClient";
import { NodeCheckpointsTable } from "@/modules/checkpoint/ui/nodeCheckpointsTable";
import { NodeCheckpoint } from "@/modules/checkpoint/domain/nodeTypes";

export default function CheckpointsPage() {
  const query = useQuery({
    queryKey: ["node-checkpoints"],
    queryFn: async () => (await apiClient.get<NodeCheckpoint[]>("/reports/checkpoints")).data,
  });
  return (
    <section className="p-6 space-y-3">
      <h2>Checkpoints</h2>
      <NodeCheckpointsTable data={query.data ?? []} loading={query.isLoading} onSettle={() => undefined} />
    </section>
  );
}
"""
CHROMIUM = "/usr/bin/chromium"


def log(message: str) -> None:
    print(f"dashboard_screenshots: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(webapp: Path, build: Path) -> Path:
    """Copy the checkout into `build` with the stand-ins as workspace packages; returns the starter app."""
    if not (webapp / "apps" / "starter" / "package.json").is_file():
        raise SystemExit(f"{webapp} is not a coordinator-webapp checkout (no apps/starter/package.json)")
    if build.exists():
        shutil.rmtree(build)
    shutil.copytree(webapp, build, ignore=shutil.ignore_patterns(".git", "node_modules", ".next", ".turbo"))
    add_checkpoints_page(build)
    # Only the starter app is built: the other apps pull in more private packages.
    for app in (build / "apps").iterdir():
        if app.name != "starter":
            shutil.rmtree(app)
    for folder in STAND_INS.values():
        shutil.copytree(STUBS / folder, build / "stubs" / folder)
        manifest = build / "stubs" / folder / "package.json"
        data = json.loads(manifest.read_text())
        data["dependencies"] = {k: v for k, v in STAND_IN_DEPENDENCIES.items() if k in data.get("peerDependencies", {})}
        data.pop("peerDependencies", None)
        manifest.write_text(json.dumps(data, indent=2))
    workspace = build / "pnpm-workspace.yaml"
    workspace.write_text(workspace.read_text().rstrip() + '\n  - "stubs/*"\n')
    # The lockfile pins the private packages' tarballs: resolve afresh against the stand-ins.
    (build / "pnpm-lock.yaml").unlink(missing_ok=True)
    for manifest in [build / "apps" / "starter" / "package.json", *sorted((build / "packages").glob("*/package.json"))]:
        data = json.loads(manifest.read_text())
        for section in ("dependencies", "devDependencies", "peerDependencies"):
            for name in STAND_INS:
                if name in data.get(section, {}):
                    data[section][name] = "workspace:*"
        manifest.write_text(json.dumps(data, indent=2))
    # The stand-ins carry no type declarations: type-checking the app against them would only
    # report the stand-ins, so the build skips it (the data path is what is exercised).
    config = build / "apps" / "starter" / "next.config.ts"
    text = config.read_text()
    anchor = "const nextConfig: NextConfig = {"
    if anchor not in text:
        raise SystemExit(f"{config} no longer opens with {anchor!r}: update prepare()")
    config.write_text(text.replace(anchor, anchor + "\n  typescript: { ignoreBuildErrors: true },", 1))
    return build / "apps" / "starter"


def add_checkpoints_page(build: Path) -> None:
    """Give the starter app a `/checkpoints` page rendering the platform app's checkpoint table
    (run before the platform app is removed from the build copy)."""
    starter = build / "apps" / "starter"
    for source, target in PLATFORM_FILES:
        if not (build / source).is_file():
            raise SystemExit(f"the checkout has no {source}: update PLATFORM_FILES")
        destination = starter / target
        if destination.exists():
            raise SystemExit(f"the starter app has its own {target} now: update PLATFORM_FILES")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build / source, destination)
    page = starter / "src" / "app" / "checkpoints" / "page.tsx"
    if page.exists():
        raise SystemExit(f"the starter app has its own {page.relative_to(build)} now")
    page.parent.mkdir(parents=True)
    page.write_text(CHECKPOINTS_PAGE)


def demo_start(today: dt.date) -> dt.date:
    """A Friday two days before the newest Sunday on or before `today`: a two-day demo then ends
    exactly as a weekly checkpoint period does (so it has a checkpoint), and inside the
    dashboard's 30-day chart window."""
    sunday = today - dt.timedelta(days=(today.weekday() + 1) % 7)
    return sunday - dt.timedelta(days=2)


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800) -> None:
    log(f"$ {' '.join(cmd)}  (in {cwd})")
    # Children's output goes to stderr: stdout is the list of PNGs.
    completed = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, stdout=sys.stderr)
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {completed.returncode}")


def wait_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the process serving {url} exited with code {process.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status < 500:
                    return
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def started(cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """A child in its own process group, stopped (the group) on exit; its output goes to `log_path`."""
    log(f"starting {' '.join(cmd)} (log {log_path})")
    with open(log_path, "wb") as out:
        process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def screenshot(url: str, path: Path, profile: Path, wait_ms: int, height: int) -> None:
    # --virtual-time-budget lets the page's fetches and renders finish before the capture.
    cmd = [
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--user-data-dir={profile}", f"--window-size=1400,{height}", f"--virtual-time-budget={wait_ms}",
        f"--screenshot={path}", url,
    ]
    completed = subprocess.run(cmd, capture_output=True, timeout=180)
    if completed.returncode != 0 or not path.is_file():
        raise SystemExit(f"chromium could not capture {url}: {completed.stderr.decode(errors='replace')[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webapp", type=Path, required=True, help="a checkout of crunchdao/coordinator-webapp")
    parser.add_argument("--out", type=Path, default=Path("dashboard-shots"), help="folder for the PNGs")
    parser.add_argument("--home", type=Path, help="a node home with a lake (default: a fresh `coordinator demo` lake)")
    parser.add_argument("--build-dir", type=Path, help="where to copy and build the webapp (default: a temporary folder)")
    parser.add_argument("--skip-install", action="store_true", help="reuse --build-dir as installed and built before")
    parser.add_argument("--wait-ms", type=int, default=15000, help="page time before each capture")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (demo lake, build, browser profiles)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: run scripts/install_browser.sh")
    work = Path(tempfile.mkdtemp(prefix="dashboard-shots-"))
    try:
        shots = capture(args, work)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for path in shots:
        print(path)
    return 0


def capture(args: argparse.Namespace, work: Path) -> list[Path]:
    build = (args.build_dir or work / "webapp").resolve()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    api_port, web_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1", "NEXT_PUBLIC_API_URL": api_url, "CI": "1"}

    coordinator = [str(Path(sys.executable).parent / "coordinator")]
    home = args.home.resolve() if args.home else work / "home"
    if args.home is None:
        start = demo_start(dt.datetime.now(dt.timezone.utc).date())
        run([*coordinator, "demo", "--home", str(home / "demo"), "--days", "2", "--start", start.isoformat()], cwd=ROOT)
        home = home / "demo"

    starter = build / "apps" / "starter"
    if not args.skip_install:
        starter = prepare(args.webapp.resolve(), build)
        run([*PNPM, "install", "--no-frozen-lockfile", "--config.strict-peer-dependencies=false"], cwd=build, env=env)
        # The API's address is baked into the rewrites at build time: build after choosing it.
    api_env = {**env, "COORDINATOR_HOME": str(home), "API_HOST": "127.0.0.1", "API_PORT": str(api_port)}
    with started([*coordinator, "api"], ROOT, api_env, out / "api.log") as api:
        wait_http(f"{api_url}/healthz", 60, api)
        run([*PNPM, "exec", "next", "build"], cwd=starter, env=env)
        with started([*PNPM, "exec", "next", "start", "-p", str(web_port), "-H", "127.0.0.1"], starter, env, out / "web.log") as web:
            base = f"http://127.0.0.1:{web_port}"
            wait_http(f"{base}/leaderboard", 120, web)
            shots = []
            for page, height in PAGES.items():
                path = out / f"{page}.png"
                screenshot(f"{base}/{page}", path, work / f"profile-{page}", args.wait_ms, height)
                shots.append(path)
    return shots


if __name__ == "__main__":
    sys.exit(main())
