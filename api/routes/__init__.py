"""The report API's routers, one module per report; `ROUTERS` is what the app mounts.

A new report is a new module here with its own `APIRouter` (prefix, tags, `response_model` on
every route), added to `ROUTERS`.
"""

from api.routes import checkpoints, health, leaderboard, merkle, predictions

ROUTERS = (health.router, leaderboard.router, predictions.router, checkpoints.router, merkle.router)
