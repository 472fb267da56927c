"""scripts/dashboard_screenshots.py without npm: how it prepares a webapp checkout for the build
(stand-ins linked as workspace packages, the checkout itself untouched) and where its demo starts."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("dashboard_screenshots", ROOT / "scripts" / "dashboard_screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


PLATFORM_SOURCES = (
    ("apps/platform/src/modules/checkpoint/ui/nodeCheckpointsTable.tsx", "src/modules/checkpoint/ui/nodeCheckpointsTable.tsx"),
    ("apps/platform/src/modules/checkpoint/domain/nodeTypes.ts", "src/modules/checkpoint/domain/nodeTypes.ts"),
    ("apps/platform/src/utils/formatDate.ts", "src/utils/formatDate.ts"),
)


def fake_checkout(root: Path) -> Path:
    write_json(root / "package.json", {"name": "coordinator-webapp"})
    (root / "pnpm-workspace.yaml").write_text('packages:\n  - "packages/*"\n  - "apps/*"\n')
    (root / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    write_json(root / "apps" / "starter" / "package.json", {"dependencies": {"@crunch-ui/core": "^1.6.0", "next": "16.1.2"}})
    (root / "apps" / "starter" / "next.config.ts").write_text("const nextConfig: NextConfig = {\n  output: 'standalone',\n};\n")
    write_json(root / "apps" / "platform" / "package.json", {"dependencies": {"@crunchdao/staking": "1"}})
    for source, _ in PLATFORM_SOURCES:
        (root / source).parent.mkdir(parents=True, exist_ok=True)
        (root / source).write_text(f"// {source}\n")
    write_json(root / "packages" / "metrics" / "package.json", {"dependencies": {"@crunchdao/chart": "^0.1.5"}, "peerDependencies": {"@crunch-ui/icons": "^1"}})
    return root


def test_prepare_links_the_stand_ins_and_leaves_the_checkout_alone(script, tmp_path):
    checkout = fake_checkout(tmp_path / "checkout")
    before = {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()}
    starter = script.prepare(checkout, tmp_path / "build")
    build = tmp_path / "build"
    assert starter == build / "apps" / "starter"
    assert {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()} == before
    assert not (build / "pnpm-lock.yaml").exists()
    assert not (build / "apps" / "platform").exists()
    assert '"stubs/*"' in (build / "pnpm-workspace.yaml").read_text()
    assert json.loads((starter / "package.json").read_text())["dependencies"] == {"@crunch-ui/core": "workspace:*", "next": "16.1.2"}
    metrics = json.loads((build / "packages" / "metrics" / "package.json").read_text())
    assert metrics["dependencies"] == {"@crunchdao/chart": "workspace:*"} and metrics["peerDependencies"] == {"@crunch-ui/icons": "workspace:*"}
    for name, folder in script.STAND_INS.items():
        manifest = json.loads((build / "stubs" / folder / "package.json").read_text())
        assert manifest["name"] == name and "peerDependencies" not in manifest
    core = json.loads((build / "stubs" / "crunch-ui-core" / "package.json").read_text())
    assert set(core["dependencies"]) == {"react", "react-hook-form", "@tanstack/react-table"}
    assert "ignoreBuildErrors: true" in (starter / "next.config.ts").read_text()


def test_prepare_adds_a_checkpoints_page_rendering_the_platform_table(script, tmp_path):
    checkout = fake_checkout(tmp_path / "checkout")
    starter = script.prepare(checkout, tmp_path / "build")
    assert script.PLATFORM_FILES == PLATFORM_SOURCES
    for source, target in PLATFORM_SOURCES:
        assert (starter / target).read_text() == f"// {source}\n"
    page = (starter / "src" / "app" / "checkpoints" / "page.tsx").read_text()
    assert 'from "@/modules/checkpoint/ui/nodeCheckpointsTable"' in page and '"/reports/checkpoints"' in page
    assert "checkpoints" in script.PAGES
    assert not (checkout / "apps" / "starter" / "src").exists()


def test_prepare_refuses_a_checkout_without_the_platform_table(script, tmp_path):
    checkout = fake_checkout(tmp_path / "checkout")
    (checkout / PLATFORM_SOURCES[0][0]).unlink()
    with pytest.raises(SystemExit, match="nodeCheckpointsTable"):
        script.prepare(checkout, tmp_path / "build")


def test_prepare_refuses_a_folder_that_is_not_the_webapp(script, tmp_path):
    with pytest.raises(SystemExit, match="not a coordinator-webapp checkout"):
        script.prepare(tmp_path, tmp_path / "build")


@pytest.mark.parametrize(
    ("today", "start"),
    [(dt.date(2026, 11, 29), dt.date(2026, 11, 27)), (dt.date(2026, 11, 30), dt.date(2026, 11, 27)), (dt.date(2026, 12, 5), dt.date(2026, 11, 27)), (dt.date(2026, 12, 6), dt.date(2026, 12, 4))],
)
def test_the_demo_ends_on_a_sunday_no_later_than_today(script, today, start):
    assert script.demo_start(today) == start
    end = start + dt.timedelta(days=2)
    assert end.weekday() == 6 and end <= today
