"""The report API: a FastAPI app that serves the lake's reports (leaderboard, predictions,
checkpoints and their emissions) to operators, participants and dashboards.

It only reads: every request gets its own in-memory DuckDB connection over the Parquet lake, so
it never takes a lock and keeps answering while Dagster runs rewrite partitions. Build the app
with `api.app.create_app()`; `coordinator api` serves it with uvicorn.

Layout: `settings` (environment), `deps` (request dependencies), `sql` (parameterised query
building), `schemas` (response models), `routes/` (one router per report), `app` (assembly).
"""
