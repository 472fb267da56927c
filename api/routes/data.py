"""`/data/backfill/...`: raw Parquet downloads of an hourly table's partitions, for operators
and participants who backfill their own stores.

The file is opened before the answer starts and streamed from that open handle: a partition
replaced by rename meanwhile does not cut the download short (the old inode stays readable).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import StreamingResponse

from api.deps import LakeDep, PaginationDep
from api.schemas import Page, PartitionFile
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT

router = APIRouter(prefix="/data/backfill", tags=["data"])

CHUNK = 256 * 1024


class HourlyTable(StrEnum):
    feed_records = "feed_records"
    inputs = "inputs"
    predictions = "predictions"
    ensemble_predictions = "ensemble_predictions"
    scores = "scores"
    snapshots = "snapshots"
    leaderboard_history = "leaderboard_history"


PartitionKey = Annotated[
    str, Path(pattern=r"^\d{4}-\d{2}-\d{2}-\d{2}:00$", description="the hour partition, e.g. 2026-11-20-10:00 (UTC)")
]


def _key(path: os.PathLike) -> str:
    hour_dir = os.path.basename(os.path.dirname(path))
    date_dir = os.path.basename(os.path.dirname(os.path.dirname(path)))
    return f"{date_dir.split('=', 1)[1]}-{hour_dir.split('=', 1)[1]}:00"


@router.get("/{table}", response_model=Page[PartitionFile], summary="Hour partitions of a table, newest first")
def list_partitions(lake: LakeDep, table: HourlyTable, page: PaginationDep) -> Page[PartitionFile]:
    files = sorted(lake.files(table.value), reverse=True)
    chosen = files[page.offset : page.offset + page.limit]
    items = []
    for path in chosen:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        key = _key(path)
        items.append(PartitionFile(table=table.value, partition_key=key, bytes=size, url=f"/data/backfill/{table.value}/{key}"))
    return Page[PartitionFile](items=items, limit=page.limit, offset=page.offset, total=len(files))


@router.get(
    "/{table}/{partition_key}",
    response_class=StreamingResponse,
    summary="Download one hour partition as Parquet",
    responses={200: {"content": {"application/vnd.apache.parquet": {}}, "description": "the Parquet file"}, 404: {"description": "no such partition"}},
)
def download(lake: LakeDep, table: HourlyTable, partition_key: PartitionKey) -> StreamingResponse:
    try:
        dt.datetime.strptime(partition_key, WINDOW_KEY_FORMAT)
    except ValueError:
        raise HTTPException(status_code=422, detail=[{"type": "value_error", "loc": ["path", "partition_key"], "msg": f"{partition_key!r} is not a valid hour", "input": partition_key}]) from None
    path = lake.partition_path(table.value, partition_key)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the generator below
    except FileNotFoundError:
        raise HTTPException(status_code=404, detail=f"no {table.value} partition {partition_key}") from None

    def chunks() -> Iterator[bytes]:
        with handle:
            while block := handle.read(CHUNK):
                yield block

    size = os.fstat(handle.fileno()).st_size
    name = f"{table.value}-{partition_key.replace(':', '')}.parquet"
    return StreamingResponse(
        chunks(),
        media_type="application/vnd.apache.parquet",
        headers={"Content-Length": str(size), "Content-Disposition": f'attachment; filename="{name}"'},
    )
