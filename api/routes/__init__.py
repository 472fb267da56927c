"""The report API's routers, one module per report; `ROUTES` is what the app mounts, each with
its auth tier (see `api.auth`).

A new report is a new module here with its own `APIRouter` (prefix, tags, `response_model` on
every route), added to `ROUTES`. Admin routes take `AdminCaller` themselves (they record who
called); the tiers here guard whole routers.
"""

from api.routes import (
    backfill,
    checkpoint_review,
    checkpoints,
    dashboard_charts,
    dashboard_checkpoints,
    data,
    feeds,
    health,
    info,
    late_track,
    leaderboard,
    merkle,
    models,
    predictions,
    ranks,
    snapshots,
    tournament,
    tournament_charts,
    timing,
)

# (router, tier): "public", "read" (needs the key when API_READ_AUTH=true) or "admin"; writes are
# admin whatever the router's tier. API_PUBLIC_PREFIXES / API_ADMIN_PREFIXES override (api.auth).
ROUTES = (
    (health.router, "public"),
    (info.router, "public"),
    (leaderboard.router, "public"),
    (ranks.router, "public"),
    (late_track.router, "read"),
    (dashboard_charts.schema_router, "public"),
    (dashboard_charts.models_router, "public"),
    (models.router, "public"),
    (models.contract_router, "public"),
    (models.diversity_router, "public"),
    (dashboard_charts.feeds_router, "public"),
    (feeds.router, "public"),
    (dashboard_charts.predictions_router, "read"),
    (predictions.router, "read"),
    (snapshots.router, "read"),
    (snapshots.ensemble_router, "public"),
    # Before checkpoints.router: /latest and /latest/prizes are not checkpoint ids.
    (dashboard_checkpoints.router, "public"),
    (checkpoint_review.router, "public"),  # the diff is public; approve takes AdminCaller
    (checkpoint_review.explain_router, "read"),  # snapshots and their proofs, as /reports/merkle/proof
    (checkpoints.router, "public"),
    (checkpoints.v1_router, "public"),
    (checkpoints.emissions_router, "public"),
    (ranks.payouts_router, "public"),
    (merkle.router, "public"),
    (merkle.proof_router, "read"),  # a proof carries the snapshot's contents, as snapshots do
    (data.router, "read"),
    (backfill.router, "admin"),
    # Rounds, their status and checkpoints are read-tier; the inference, score and status writes are admin.
    (tournament_charts.router, "read"),
    (tournament.router, "read"),
    (timing.router, "public"),
)
ROUTERS = tuple(router for router, _ in ROUTES)
