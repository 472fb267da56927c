"""The shapes CrunchDAO's dashboard (coordinator-webapp) reads from the report API.

`shapes` holds the row shaping as plain functions over polars frames and dicts (flat window and
metric fields, chart timestamps, prizes, the submission tool's emission format); `report_schema`
builds the dashboard's leaderboard columns and chart widgets from the contract. The routes that
serve them are `api.routes.dashboard_*`.
"""
