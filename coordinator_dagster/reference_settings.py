"""The reference engine's environment variables that this node refuses, with what to use instead.

An operator moving from the reference engine brings its environment. A variable the reference
reads is either read here with the same meaning (a field of `Settings` or `ApiSettings`, or
`CRUNCH_CONFIG_MODULE` / `SCORING_FUNCTION` / `INFERENCE_INPUT_BUILDER`, read with the contract), or listed below: setting it
stops the node at start-up with the name of ours, rather than being ignored. docs/migrating.md
maps every one; tests/test_reference_settings.py holds the two together.
"""

from __future__ import annotations

from collections.abc import Mapping

# variable → what to use here instead (shown in the start-up error).
REFUSED: dict[str, str] = {
    "FEED_PROVIDER": "FEED_SOURCE (binance, pyth, ccxt or synthetic)",
    "FEED_ASSETS": "FEED_SUBJECTS",
    "FEED_POLL_SECONDS": "FEED_LIVE=1 (the live listener) or the minute ingest schedule",
    "FEED_BACKFILL_MINUTES": "PARTITIONS_START and a Dagster backfill of feed_records",
    "FEED_CANDLES_WINDOW": "the contract's input_window_seconds (a time span) or input_window_size (feed steps)",
    "MARKET_RECORD_TTL_DAYS": "FEED_RECORD_TTL_DAYS",
    "FEED_RETENTION_CHECK_SECONDS": "nothing: retention_schedule prunes once a day",
    "MARKET_RETENTION_CHECK_SECONDS": "nothing: retention_schedule prunes once a day",
    "SCORE_INTERVAL_SECONDS": "nothing: each round is scored by the score sensor once its horizon has passed",
    "INFERENCE_OUTPUT_VALIDATOR": "the contract's output_type",
    "MODEL_SCORE_AGGREGATOR": "the contract's aggregate_snapshot",
    "LEADERBOARD_RANKER": "the contract's aggregation (ranking_key, ranking_direction)",
    "API_ROUTES_DIR": "API_CUSTOM_DIR",
    "MODEL_RUNNER_TIMEOUT_SECONDS": "MODEL_TIMEOUT_SECONDS",
    "GATEWAY_CERT_DIR": "SECURE_CERT_DIR (the orchestrator's mTLS mode; its Phala gateway mode is not supported)",
    "NETWORK": "nothing: checkpoints are submitted through the admin API, not by the node",
    "CRUNCH_PUBKEY": "the contract's crunch_pubkey",
    "COMPUTE_PROVIDER_PUBKEY": "the contract's compute_provider",
    "DATA_PROVIDER_PUBKEY": "the contract's data_provider",
    "POSTGRES_USER": "COORDINATOR_HOME (the Parquet lake)",
    "POSTGRES_PASSWORD": "COORDINATOR_HOME (the Parquet lake)",
    "POSTGRES_HOST": "COORDINATOR_HOME (the Parquet lake)",
    "POSTGRES_PORT": "COORDINATOR_HOME (the Parquet lake)",
    "POSTGRES_DB": "COORDINATOR_HOME (the Parquet lake)",
    "ALEMBIC_DIR": "nothing: each lake table's schema is in the code (lake/schemas.py)",
    "BACKFILL_DATA_DIR": "COORDINATOR_HOME (feed_records partitions)",
}
# Variables the reference reads by prefix.
REFUSED_PREFIXES: dict[str, str] = {
    "FEED_OPT_": "FEED_BASE_URL, FEED_SYMBOLS, FEED_EXCHANGE, PYTH_FEED_IDS",
}


def refused_variables(environ: Mapping[str, str]) -> list[str]:
    """One line per refused variable set (non-empty) in `environ`: its name and ours."""
    lines = []
    for name in sorted(environ):
        if not str(environ[name]).strip():
            continue
        upper = name.upper()
        instead = REFUSED.get(upper) or next((v for p, v in REFUSED_PREFIXES.items() if upper.startswith(p)), None)
        if instead:
            lines.append(f"{upper} is the reference engine's setting and is not read here: use {instead}")
    return lines
