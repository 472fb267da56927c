"""The node's and the API's settings: read from the environment when asked (never at import), by
the variable names and defaults README's configuration table gives, with errors naming the variable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from api.settings import ApiSettings
from coordinator_dagster.settings import Settings, SettingsError, default_home, load_settings, variable_name

ROOT = Path(__file__).resolve().parents[1]


def _readme_defaults() -> dict[str, str]:
    """`VAR` → its default cell, from README's configuration table (rows naming two variables split)."""
    rows: dict[str, str] = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        defaults = re.findall(r"`([^`]*)`", cells[1]) if cells[1].startswith("`") else []
        if len(defaults) == len(names):
            rows.update(zip(names, defaults))
    return rows


def test_defaults_are_the_ones_readme_gives():
    documented = _readme_defaults()
    settings = load_settings({})
    checked = 0
    for field, value in settings.model_dump().items():
        name = variable_name(Settings, field)
        if name not in documented or "$" in documented[name] or "<" in documented[name]:
            continue
        shown = ",".join(value) if isinstance(value, list) else str(value)
        assert shown == documented[name] or (isinstance(value, float) and float(documented[name]) == value), name
        checked += 1
    assert checked >= 10  # the table really was read
    assert settings.home == default_home() and documented["COORDINATOR_HOME"] == "<checkout>/.coordinator"
    assert settings.resolved_dagster_home() == settings.home / "dagster_home"  # `$COORDINATOR_HOME/dagster_home`


def test_every_variable_is_documented():
    docs = (ROOT / "README.md").read_text(encoding="utf-8") + "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    for cls in (Settings, ApiSettings):
        for field in cls.model_fields:
            assert f"`{variable_name(cls, field)}`" in docs, (cls.__name__, field)


def test_values_come_from_the_variables(tmp_path):
    settings = load_settings(
        {"COORDINATOR_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "d"), "FEED_SUBJECTS": "btc, sol,", "FEED_SYMBOLS": "BTC=BTC/USDC",
         "PYTH_API_KEY": "secret", "FEED_LIVE": "1", "MODEL_RUNNER_PORT": "9100", "FEED_SOURCE": ""}
    )
    assert settings.home == tmp_path and settings.resolved_dagster_home() == tmp_path / "d"
    assert settings.feed_subjects == ["BTC", "SOL"] and settings.feed_symbols == {"BTC": "BTC/USDC"}
    assert settings.pyth_api_key_set is True and settings.feed_live is True and settings.model_runner_port == 9100
    assert settings.feed_source == "synthetic"  # empty is unset
    api = ApiSettings.from_env({"COORDINATOR_HOME": str(tmp_path), "API_CORS_ORIGINS": "https://a.example, https://b.example", "API_KEY": "k"})
    assert api.home == tmp_path and api.cors_origins == ("https://a.example", "https://b.example") and api.api_key.get_secret_value() == "k"


def test_a_given_mapping_is_the_whole_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FEED_SOURCE", "ccxt")
    monkeypatch.setenv("COORDINATOR_HOME", str(tmp_path))
    assert load_settings().feed_source == "ccxt" and load_settings().home == tmp_path
    assert load_settings({}).feed_source == "synthetic" and load_settings({}).home == default_home()


def test_the_shells_home_is_not_the_coordinator_home(monkeypatch, tmp_path):
    monkeypatch.delenv("COORDINATOR_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PYTH_API_KEY_SET", "1")  # fields read from an alias answer to it alone
    settings = load_settings()
    assert settings.home == default_home() and settings.pyth_api_key_set is False
    assert ApiSettings.from_env().home == default_home()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FEED_SOURCE": "bogus"}, "FEED_SOURCE must be one of synthetic, ccxt, pyth, got 'bogus'"),
        ({"FEED_LIVE": "perhaps"}, "FEED_LIVE: Input should be a valid boolean"),
        ({"MODEL_RUNNER_PORT": "80000"}, "MODEL_RUNNER_PORT: Input should be less than or equal to 65535"),
        ({"FEED_SYMBOLS": "BTC"}, "FEED_SYMBOLS: 'BTC' is not SUBJECT=VALUE"),
    ],
)
def test_errors_name_the_variable(environ, message):
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert str(raised.value).startswith(message.split(":")[0]) and message in str(raised.value)


@pytest.mark.process
def test_nothing_reads_the_environment_at_import():
    # With a setting that cannot validate, importing every module that reads settings still works.
    code = "import coordinator_dagster.settings, coordinator_dagster.definitions, api.settings, api.app, coordinator_dagster.cli.main"
    env = {"PATH": "/usr/bin:/bin", "FEED_SOURCE": "bogus", "API_READ_AUTH": "perhaps"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
