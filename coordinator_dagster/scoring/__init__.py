"""Scoring: ground truth, per-prediction scores, metrics, snapshots, ensembles, ranking, emission
and Merkle tamper evidence. Plain functions over polars frames; nothing here imports Dagster, the
lake's writers, the API or the CLI."""
