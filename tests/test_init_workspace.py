"""`coordinator init-workspace`: each template pack generates a workspace whose own `make test`
and `make demo` pass with its own contract and models; bad names and existing folders are refused
with nothing written."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import polars as pl
import pytest

from api import settings as api_settings
from coordinator_dagster import settings as node_settings
from coordinator_dagster.cli.main import main
from coordinator_dagster.contracts import CONFIG_ENV_VAR
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.cli.scaffold import available_packs, render, render_values

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

# Variables that would point a workspace's commands at another lake, contract or instance.
_NODE_VARS = ("COORDINATOR_HOME", "CRUNCH_CONFIG_MODULE", "MODELS_MANIFEST", "DAGSTER_HOME", "PYTHONPATH")


def workspace_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NODE_VARS and not k.startswith(("PYTEST_", "MAKE"))}
    env.pop("MAKEFLAGS", None)
    return env


def make(workspace: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=workspace,
        env=workspace_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def init(*args: str) -> int:
    return main(["init-workspace", *args])


def read_table(workspace: Path, table: str) -> pl.DataFrame:
    # The demo's own home inside the workspace's node home.
    files = sorted((workspace / ".coordinator" / "demo" / "lake" / table).rglob("*.parquet"))
    assert files, f"no {table} files in the workspace's lake"
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


PACKS = {
    # pack: (model ids in its manifest, scope keys of its rounds, predictions in one day)
    "realtime": ({"trend"}, {"btc-60s", "eth-60s"}, 2 * 1440),
}


@pytest.mark.parametrize("pack", sorted(PACKS))
def test_a_generated_workspace_passes_its_tests_and_runs_its_demo(tmp_path, pack):
    name = f"{pack}-cup"
    assert init(name, "--template", pack, "--dir", str(tmp_path)) == 0
    workspace = tmp_path / name
    package = name.replace("-", "_")
    for path in ("Makefile", ".env", "workspace.yaml", "README.md", "tests/test_contract.py",
                 f"{package}/contract.py", f"{package}/models/example_model.py", f"{package}/models/manifest.json"):
        assert (workspace / path).is_file(), path
    manifest = json.loads((workspace / package / "models" / "manifest.json").read_text())
    model_ids, scope_keys, predictions_per_day = PACKS[pack]
    assert {entry["model_id"] for entry in manifest} == model_ids

    tests = make(workspace, "test")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"\d+ passed", tests.stdout) and "failed" not in tests.stdout

    demo = make(workspace, "demo", "DEMO_ARGS=--days 1")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert f"Leaderboard of the lake {workspace / '.coordinator' / 'demo' / 'lake'}" in demo.stdout
    # The demo ran the workspace's own contract and models, into its home in the workspace.
    leaderboard = read_table(workspace, "leaderboard")
    assert set(leaderboard["model_id"]) == model_ids
    predictions = read_table(workspace, "predictions")
    assert set(predictions["scope_key"]) == scope_keys
    assert set(predictions["model_id"]) == model_ids
    assert predictions.height == predictions_per_day
    scores = read_table(workspace, "scores")
    assert scores.filter(pl.col("success"))["value"].is_not_null().all()
    checkpoints = read_table(workspace, "checkpoints")
    assert checkpoints.height >= 1
    for row in checkpoints.iter_rows(named=True):
        emission = json.loads(row["emission"])
        assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) == FRAC64_MULTIPLIER



def test_the_synth_workspace_runs_two_days_of_both_profiles_with_the_unmodified_example_tracker(tmp_path):
    pytest.importorskip("crunch_synth")  # the workspace's requirements.txt, in the coordinator's environment
    assert init("synth-cup", "--template", "synth", "--dir", str(tmp_path)) == 0
    workspace = tmp_path / "synth-cup"
    manifest = json.loads((workspace / "synth_cup" / "models" / "manifest.json").read_text())
    entrypoints = {entry["model_id"]: entry["entrypoint"] for entry in manifest}
    # The example model is crunch-synth's own class from the installed package, not a copy.
    assert entrypoints["example"] == "crunch_synth.examples.exampletracker:GaussianStepTracker"
    assert "crunch-synth==0.15.0" in (workspace / "requirements.txt").read_text()

    tests = make(workspace, "test", timeout=600)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"\d+ passed", tests.stdout) and "failed" not in tests.stdout

    demo = make(workspace, "demo", "DEMO_ARGS=--days 2", timeout=1200)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    scores = read_table(workspace, "density_round_scores")
    # 2 days × (24 hourly 24h rounds + 120 twelve-minute 1h rounds) × 3 assets × 3 models
    assert scores.height == 2 * (24 + 120) * 3 * 3
    assert set(scores["model_id"]) == {"example", "benchmark", "volmix"}
    assert set(scores["subject"]) == {"BTC", "ETH", "SOL"}
    assert dict(scores.group_by("profile").len().iter_rows()) == {"24h": 2 * 24 * 9, "1h": 2 * 120 * 9}
    assert set(scores.filter(pl.col("model_id") == "example")["status"]) == {"SCORED"}
    per_round = scores.group_by("subject", "horizon_seconds", "performed_at").agg(pl.col("score").max())
    assert (per_round["score"] == 1.0).all()  # every round has its best model at 1
    assert "mean normalised score per model and horizon" in demo.stdout
    # The node's leaderboards over those rounds: one table per horizon with the three models ranked.
    board = read_table(workspace, "group_leaderboard")
    by_horizon = board.filter(pl.col("group_kind") == "horizon")
    assert sorted(set(by_horizon["group_key"]), key=int) == ["3600", "86400"]
    for key in ("3600", "86400"):
        assert sorted(by_horizon.filter(pl.col("group_key") == key)["rank"].to_list()) == [1, 2, 3]
    assert len(set(board.filter(pl.col("group_kind") == "param")["group_key"])) == 3 * 2
    assert "Leaderboard by horizon" in demo.stdout and "**horizon 86400 s**" in demo.stdout
    # Its weekly checkpoint pays per the production rule: top 4 per horizon, the benchmark never
    # paid, so with two other models slots 3 and 4 of each horizon stay in the pool.
    payouts = read_table(workspace, "checkpoint_payouts")
    paid = payouts.filter(pl.col("status") == "paid")
    assert set(paid["model_id"]) == {"example", "volmix"} and paid.height == 2 * 2
    assert payouts.filter(pl.col("model_id") == "benchmark")["reason"].to_list() == ["benchmark model: excluded from payouts"] * 2
    retained = payouts.filter(pl.col("status") == "retained")
    assert sorted(retained.select("group_key", "slot").rows()) == [("3600", 3), ("3600", 4), ("86400", 3), ("86400", 4)]
    assert paid["reward_pct"].sum() + retained["reward_pct"].sum() == FRAC64_MULTIPLIER
    assert paid["prize"].sum() + retained["prize"].sum() == 10_000_000_000  # the contract's pool, USDC micro-units
    assert "= pool 10,000,000,000 USDC micro-unit (1e-6)" in demo.stdout


def test_the_workspace_code_location_loads_with_dagster(tmp_path):
    assert init("loc-check", "--dir", str(tmp_path)) == 0
    workspace = tmp_path / "loc-check"
    result = make(workspace, "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful for code location loc-check" in result.stdout + result.stderr
    # Dagster's temporary instance went into the workspace's own data folder and was removed.
    assert not list(workspace.rglob(".tmp_dagster_home_*"))


def test_an_existing_folder_is_refused_and_left_untouched(tmp_path, capsys):
    existing = tmp_path / "taken"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    assert init("taken", "--dir", str(tmp_path)) == 1
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in existing.iterdir()] == ["notes.txt"]
    assert (existing / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no staging folder left behind

    (tmp_path / "empty").mkdir()
    assert init("empty", "--dir", str(tmp_path)) == 1
    assert list((tmp_path / "empty").iterdir()) == []

    (tmp_path / "a-file").write_text("x")
    assert init("a-file", "--dir", str(tmp_path)) == 1
    assert (tmp_path / "a-file").read_text() == "x"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("..", "not a valid workspace name"),
        ("a/b", "not a valid workspace name"),
        ("../escape", "not a valid workspace name"),
        ("/abs", "not a valid workspace name"),
        ("Upper", "not a valid workspace name"),
        ("1st", "not a valid workspace name"),
        ("-dash", "not a valid workspace name"),
        ("has space", "not a valid workspace name"),
        ("café", "not a valid workspace name"),
        ("x" * 41, "at most 40"),
        ("class", "Python keyword"),
        ("import", "Python keyword"),
        ("json", "shadow an installed module"),
        ("polars", "shadow an installed module"),
        ("assets", "the coordinator itself uses"),
        ("coordinator-dagster", "the coordinator itself uses"),
    ],
)
def test_bad_names_are_refused_with_nothing_written(tmp_path, capsys, name, reason):
    assert init("--dir", str(tmp_path), "--", name) == 1
    assert reason in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent / "escape").exists()


def test_unknown_template_missing_parent_and_spaces_are_refused(tmp_path, capsys):
    assert init("fine", "--template", "nope", "--dir", str(tmp_path)) == 1
    assert "unknown template 'nope'" in capsys.readouterr().err
    assert init("fine", "--dir", str(tmp_path / "missing")) == 1
    assert "not an existing folder" in capsys.readouterr().err
    spaced = tmp_path / "with space"
    spaced.mkdir()
    assert init("fine", "--dir", str(spaced)) == 1
    assert "must not contain spaces" in capsys.readouterr().err
    assert list(spaced.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["with space"]


def test_list_templates_names_every_pack(capsys):
    assert init("--list-templates") == 0
    out = capsys.readouterr().out
    assert {line.split()[0] for line in out.splitlines()} == {"realtime", "synth", "tournament", "trading"}


def _documented_settings() -> set[str]:
    names = {CONFIG_ENV_VAR}
    for cls in (node_settings.Settings, api_settings.ApiSettings):
        names |= {node_settings.variable_name(cls, field) for field in cls.model_fields}
    # Read by scripts/run.sh (make run).
    names |= {"DAGSTER_HOST", "DAGSTER_PORT", "READY_TIMEOUT"}
    return names


@pytest.mark.parametrize("pack", [p.name for p in available_packs()])
def test_every_pack_renders_completely_and_documents_every_setting(tmp_path, pack):
    files = render(pack, render_values("some-cup", pack, tmp_path / "bin", tmp_path))
    for path, text in files.items():
        assert "{{" not in text and "}}" not in text, path
    env = files[Path(".env")]
    lines = [line for line in env.splitlines() if line and not line.startswith("#")]
    names = [line.split("=", 1)[0] for line in lines]
    assert len(names) == len(set(names)), "a setting appears twice in .env"
    missing = _documented_settings() - set(names)
    assert not missing, f".env lacks {sorted(missing)}"
    # Every setting line has a comment right above it (or belongs to a commented group).
    env_lines = env.splitlines()
    for i, line in enumerate(env_lines):
        if line and not line.startswith("#"):
            above = [prev for prev in env_lines[:i][::-1] if prev][:1]
            assert above and (above[0].startswith("#") or "=" in above[0]), line
