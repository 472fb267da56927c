"""`what_if_report`: the last checkpoints under a candidate policy, beside the stored ones.

Launched from the Launchpad (`what_if_job`) with the candidate in its config; it reads the lake
and writes only its own table (`<home>/what_if/report.parquet`), never a pipeline table, so its
group (`what_if`) stays apart from the pipeline's lineage of record.
"""

import dagster as dg
from pydantic import Field

from assets.metadata import markdown_table
from coordinator_dagster.checkpoint_what_if import candidate_contract, report_frame, stability, what_if
from coordinator_dagster.lake.durable import replace_durably
from resources import ClockResource, Contract, LakeResource


class WhatIfConfig(dg.Config):
    """The candidate policy (empty: the contract's own, which reproduces every checkpoint)."""

    build_emission: str = Field(default="", description="candidate emission rule, module:function")
    scoring_function: str = Field(default="", description="candidate scoring function, module:function (periods are re-scored in memory)")
    checkpoints: int = Field(default=4, gt=0, description="how many of the newest checkpoints to recompute")


@dg.asset(deps=["checkpoints"], kinds={"polars", "parquet"}, group_name="what_if")
def what_if_report(context: dg.AssetExecutionContext, config: WhatIfConfig, lake: LakeResource, contract: Contract, clock: ClockResource) -> dg.MaterializeResult:
    """One row per checkpoint × cruncher (grain: checkpoint_id × cruncher_index): the stored and
    the candidate rank and share (frac64), the change, and whether the candidate reproduced the
    checkpoint's emission exactly. Metadata: the rank-stability summary."""
    try:
        candidate = candidate_contract(contract, config.build_emission or None, config.scoring_function or None)
        results = what_if(lake.get(contract), candidate, config.checkpoints, rescore=bool(config.scoring_function), now=clock.now())
    except ValueError as exc:
        raise dg.Failure(description=f"what-if: {exc}", allow_retries=False) from None
    frame = report_frame(results)
    path = lake.get(contract).home / "what_if" / "report.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp)
    replace_durably(tmp, path)
    summary = stability(results)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "path": dg.MetadataValue.path(str(path)),
            "candidate": f"build_emission={config.build_emission or 'contract'}, scoring_function={config.scoring_function or 'contract'}",
            **{key: value for key, value in summary.items()},
            "by_cruncher": dg.MetadataValue.md(markdown_table(frame, limit=50)),
        }
    )
