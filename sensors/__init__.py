"""Sensors, schedules and the jobs they launch.

Sensors react to the outside world (a round is due and its data has landed; a round's truth has
landed); schedules keep time (ingestion every minute, a checkpoint per period).
"""

from sensors.jobs import checkpoint_job, default_jobs, ingest_job, predict_job, score_job
from sensors.rounds import default_sensors, predict_sensor, score_sensor
from sensors.schedules import build_checkpoint_schedule, build_ingest_schedule

__all__ = [
    "build_checkpoint_schedule",
    "build_ingest_schedule",
    "checkpoint_job",
    "default_jobs",
    "default_sensors",
    "ingest_job",
    "predict_job",
    "predict_sensor",
    "score_job",
    "score_sensor",
]
