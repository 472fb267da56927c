"""Every reference-engine variable docs/migrating.md names is read here or refused at start-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.settings import ApiSettings
from coordinator_dagster.contracts import CONFIG_ENV_VAR, INPUT_BUILDER_ENV_VAR, SCORING_ENV_VAR, load_contract
from coordinator_dagster.reference_settings import REFUSED, REFUSED_PREFIXES
from coordinator_dagster.scoring.scores import default_scoring_function
from coordinator_dagster.settings import Settings, SettingsError, load_settings, variable_name

ROOT = Path(__file__).resolve().parents[1]


def documented() -> dict[str, str]:
    """`VAR` → its row, from migrating.md's table of the reference's environment variables."""
    text = (ROOT / "docs" / "migrating.md").read_text(encoding="utf-8")
    section = text.split("| reference variable | here |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"^\| `([A-Z][A-Z0-9_]*\*?)` \| (.+) \|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


ROWS = documented()
SUPPORTED = (
    {variable_name(Settings, f) for f in Settings.model_fields}
    | {variable_name(ApiSettings, f) for f in ApiSettings.model_fields}
    | {CONFIG_ENV_VAR, SCORING_ENV_VAR, INPUT_BUILDER_ENV_VAR}
)


def test_the_table_is_there():
    assert len(ROWS) > 40 and "FEED_SOURCE" in ROWS and "API_ADMIN_PREFIXES" in ROWS


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_reference_variable_is_supported_or_refused(name, tmp_path):
    row = ROWS[name]
    if row.startswith("supported"):
        assert name in SUPPORTED, f"{name}: migrating.md says supported, but no setting reads it"
        assert name not in REFUSED
        return
    assert row.startswith("refused"), f"{name}: neither supported nor refused in migrating.md"
    variable = name.replace("*", "HOST")
    with pytest.raises(SettingsError) as raised:
        load_settings({"COORDINATOR_HOME": str(tmp_path), variable: "1"})
    message = str(raised.value)
    assert message.startswith(variable) and "use " in message


def test_every_refused_variable_is_documented():
    assert set(REFUSED) | {p + "*" for p in REFUSED_PREFIXES} <= {n for n, r in ROWS.items() if r.startswith("refused")}


def test_all_refusals_are_named_at_once(tmp_path):
    with pytest.raises(SettingsError, match=r"^CRUNCH_PUBKEY is .*MODEL_RUNNER_TIMEOUT_SECONDS is .*use MODEL_TIMEOUT_SECONDS"):
        load_settings({"COORDINATOR_HOME": str(tmp_path), "MODEL_RUNNER_TIMEOUT_SECONDS": "60", "CRUNCH_PUBKEY": "x", "NETWORK": ""})


def test_binance_is_ccxt_with_binance_and_pair_subjects(tmp_path):
    settings = load_settings({"COORDINATOR_HOME": str(tmp_path), "FEED_SOURCE": "binance", "FEED_SUBJECTS": "BTCUSDT,ETH"})
    assert (settings.feed_source, settings.feed_exchange) == ("ccxt", "binance")
    assert settings.feed_symbols == {"BTCUSDT": "BTC/USDT"}  # ETH keeps the ETH/<quote> rule
    pyth = load_settings({"COORDINATOR_HOME": str(tmp_path), "FEED_SOURCE": "pyth"})
    assert pyth.feed_source == "pyth"


def test_the_base_classname_is_read(tmp_path):
    assert load_settings({"COORDINATOR_HOME": str(tmp_path)}).model_base_classname == "cruncher.ModelBaseClass"
    assert load_settings({"COORDINATOR_HOME": str(tmp_path), "MODEL_BASE_CLASSNAME": "pkg.base.Tracker"}).model_base_classname == "pkg.base.Tracker"
    with pytest.raises(SettingsError, match="MODEL_BASE_CLASSNAME"):
        load_settings({"COORDINATOR_HOME": str(tmp_path), "MODEL_BASE_CLASSNAME": "NoModule"})


def halved(prediction, ground_truth):
    return {"value": float(prediction["value"]) * float(ground_truth["profit"]) / 2}


def test_scoring_function_replaces_only_the_default(monkeypatch):
    monkeypatch.setenv(SCORING_ENV_VAR, f"{__name__}:halved")
    contract = load_contract("")
    # 0.5 × 4 % / 2 = 1 %
    assert contract.scoring_function({"value": 0.5}, {"profit": 0.04})["value"] == pytest.approx(0.01)
    monkeypatch.setenv(SCORING_ENV_VAR, "no_such_module:fn")
    with pytest.raises(ValueError, match="SCORING_FUNCTION"):
        load_contract("")
    monkeypatch.delenv(SCORING_ENV_VAR)
    assert load_contract("").scoring_function is default_scoring_function
