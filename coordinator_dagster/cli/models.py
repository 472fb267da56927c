"""`coordinator models ...`: the isolated model runner service.

    coordinator models serve [--host H] [--port P] [--manifest PATH] [--port-file F]
        [--token-file F | --insecure-no-token]
    coordinator models list [--url URL] [--token-file F]
    coordinator models disable [MODEL_ID ...] [--below COLUMN=FLOOR [--min-predictions N]]
        [--reason TEXT] [--dry-run]

`serve` runs until SIGINT/SIGTERM; its defaults come from the node settings (MODEL_RUNNER_HOST,
MODEL_RUNNER_PORT, MODELS_MANIFEST, MODEL_TIMEOUT_SECONDS, MODEL_MEMORY_LIMIT_MB, ...). Its API
token is the first line of --token-file, else MODEL_RUNNER_TOKEN; without one it refuses to
start unless told --insecure-no-token. Its caps are MODEL_RUNNER_MAX_SESSIONS and
MODEL_RUNNER_MAX_WORKERS; the workers' sandbox and limits MODEL_SANDBOX, MODEL_SCRATCH_MB,
MODEL_CPU_SECONDS and MODEL_MAX_PROCESSES (`models/sandbox.py`, `models/worker.py`).

`disable` is for models hosted by CrunchDAO's model orchestrator (MODEL_RUNNER=orchestrator): it
reports the models named, and those an operator rule finds weak on the leaderboard (`--below
score_recent=-0.5`, `models/orchestrator/rules.py`), as LOW_PERFORMANCE; the orchestrator stops
them and tells their crunchers why.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.models.http_server import read_token, serve
    from coordinator_dagster.models.manifest import ManifestError
    from coordinator_dagster.models.sandbox import SandboxUnavailable
    from coordinator_dagster.models.service import ModelService, ServiceLimits
    from coordinator_dagster.settings import load_settings
    from coordinator_dagster.tournament_models import pool_settings as worker_settings

    settings = load_settings()
    try:
        token = read_token(args.token_file)
        limits = ServiceLimits(settings.model_runner_max_sessions, settings.model_runner_max_workers)
        pool_settings = worker_settings(settings, args.timeout)
    except (OSError, ValueError, SandboxUnavailable) as exc:
        print(f"coordinator models serve: {exc}", file=sys.stderr)
        return 2
    if not token and not args.insecure_no_token:
        print("coordinator models serve: no API token: set MODEL_RUNNER_TOKEN or --token-file (make run generates one), or pass --insecure-no-token", file=sys.stderr)
        return 2
    if not token:
        print("coordinator models serve: WARNING: --insecure-no-token: anyone who can reach this port can open sessions and run rounds", file=sys.stderr, flush=True)
    manifest = args.manifest if args.manifest is not None else settings.models_manifest
    logging.getLogger("coordinator.models").setLevel(logging.INFO)
    try:
        service = ModelService(manifest, pool_settings, load_contract().output_type, limits=limits)
    except ManifestError as exc:
        print(f"coordinator models serve: {exc}", file=sys.stderr)
        return 2

    def announce(message: str) -> None:
        print(message, flush=True)

    host = args.host or settings.model_runner_host
    port = settings.model_runner_port if args.port is None else args.port
    try:
        serve(service, host, port, token, announce=_with_port_file(announce, args.port_file))
    except OSError as exc:
        service.close()
        print(f"coordinator models serve: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _with_port_file(announce, port_file: str | None):
    """Announce, and write the bound port to `port_file` once listening (for port 0)."""

    def wrapped(message: str) -> None:
        announce(message)
        if port_file and message.startswith("model runner listening on "):
            port = message.split("listening on ", 1)[1].split()[0].rsplit(":", 1)[1]
            tmp = Path(port_file).with_suffix(".tmp")
            tmp.write_text(port + "\n")
            tmp.replace(port_file)

    return wrapped


def _list(args: argparse.Namespace) -> int:
    import httpx

    from coordinator_dagster.settings import load_settings

    from coordinator_dagster.models.http_server import read_token

    url = args.url or load_settings().model_runner_url
    if not url:
        print("coordinator models list: no runner URL (--url or MODEL_RUNNER_URL)", file=sys.stderr)
        return 2
    token = read_token(args.token_file)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"coordinator models list: {url}: {exc}", file=sys.stderr)
        return 1
    body = response.json()
    for model in body["models"]:
        print(f"{model['model_id']:<24} {model['status']:<10} {model['cruncher']:<16} {model['name']}" + (f"  ({model['last_error']})" if model["last_error"] else ""))
    if body.get("manifest_error"):
        print(f"manifest error (the models above keep running): {body['manifest_error']}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    from coordinator_dagster.models.orchestrator.events import FailureCode
    from coordinator_dagster.models.orchestrator.config import OrchestratorConfig, OrchestratorError
    from coordinator_dagster.models.orchestrator.runner import report_failures
    from coordinator_dagster.models.orchestrator.rules import weak_models
    from coordinator_dagster.settings import load_settings

    settings = load_settings()
    if settings.model_runner != "orchestrator":
        print("coordinator models disable: only for MODEL_RUNNER=orchestrator (models hosted by the model orchestrator)", file=sys.stderr)
        return 2
    model_ids = list(args.model_ids)
    reason = args.reason
    if args.below:
        column, _, floor = args.below.partition("=")
        try:
            from coordinator_dagster.contracts import load_contract
            from coordinator_dagster.lake.store import Lake

            board = Lake.for_contract(settings.home, load_contract()).read("leaderboard")
            weak = weak_models(board, column.strip(), float(floor), args.min_predictions)
        except (OSError, ValueError) as exc:
            print(f"coordinator models disable: --below {args.below}: {exc}", file=sys.stderr)
            return 2
        model_ids += [m for m in weak if m not in model_ids]
        reason = reason or f"{column.strip()} below {float(floor):g} on the leaderboard (operator rule)"
    if not model_ids:
        print("coordinator models disable: no model to disable")
        return 0
    reason = reason or "disabled by the coordinator's operator for low performance"
    if args.dry_run:
        print("would report LOW_PERFORMANCE: " + ", ".join(model_ids) + f" ({reason})")
        return 0
    config = OrchestratorConfig(settings.model_runner_node_host, settings.model_runner_node_port, settings.crunch_id, settings.model_base_classname, settings.model_timeout_seconds)
    try:
        sent = report_failures(config, model_ids, FailureCode.LOW_PERFORMANCE, reason)
    except OrchestratorError as exc:
        print(f"coordinator models disable: {exc}", file=sys.stderr)
        return 1
    for model_id in model_ids:
        print(f"{model_id:<24} {'reported LOW_PERFORMANCE' if model_id in sent else 'not listed by the orchestrator'}")
    return 0 if len(sent) == len(model_ids) else 1


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the `coordinator` parser."""
    models = commands.add_parser("models", help="the isolated model runner service")
    sub = models.add_subparsers(dest="models_command", required=True)
    serve = sub.add_parser("serve", help="run the model runner service (one worker process per model)")
    serve.add_argument("--host", default=None, help="listen address (default MODEL_RUNNER_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default MODEL_RUNNER_PORT, 8100; 0 = any free port)")
    serve.add_argument("--manifest", default=None, help="model manifest JSON (default MODELS_MANIFEST; empty = the example models)")
    serve.add_argument("--timeout", type=float, default=None, help="per-model seconds per round (default MODEL_TIMEOUT_SECONDS, 5)")
    serve.add_argument("--port-file", default=None, help="write the bound port to this file once listening")
    serve.add_argument("--token-file", default=None, help="file whose first line is the API token (default MODEL_RUNNER_TOKEN)")
    serve.add_argument("--insecure-no-token", action="store_true", help="serve without a token (anyone on the host can use the runner)")
    serve.set_defaults(func=_serve)
    listing = sub.add_parser("list", help="the runner's models and their health")
    listing.add_argument("--url", default=None, help="runner URL (default MODEL_RUNNER_URL)")
    listing.add_argument("--token-file", default=None, help="file whose first line is the API token (default MODEL_RUNNER_TOKEN)")
    listing.set_defaults(func=_list)
    disable = sub.add_parser("disable", help="report orchestrator-hosted models as LOW_PERFORMANCE (MODEL_RUNNER=orchestrator)")
    disable.add_argument("model_ids", nargs="*", metavar="MODEL_ID", help="models to disable")
    disable.add_argument("--below", default=None, metavar="COLUMN=FLOOR", help="also every model whose leaderboard COLUMN is below FLOOR")
    disable.add_argument("--min-predictions", type=int, default=0, help="with --below: only models with at least this many predictions")
    disable.add_argument("--reason", default=None, help="the reason the cruncher is told")
    disable.add_argument("--dry-run", action="store_true", help="print the models, report nothing")
    disable.set_defaults(func=_disable)
