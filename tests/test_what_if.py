"""What-if (issue 20, item 5): the last checkpoints under a candidate scoring function, from the
CLI and as the Launchpad's `what_if_job`, whose table stays out of the lake's tables."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl

from assets import default_assets
from coordinator_dagster.checkpoint_what_if import candidate_contract, report_frame, stability, what_if
from coordinator_dagster.contracts import default_contract
from sensors.jobs import what_if_job
from tests.test_assets import NOW, WEEK_KEY, built, pipeline_copy  # noqa: F401  (fixtures)

CID = f"CKP-{WEEK_KEY}"
DEFAULT_SCORING = "coordinator_dagster.scoring.scores:default_scoring_function"
CONTRARIAN = "tests.test_audit_bundle:contrarian_score"


def lake_fingerprint(lake):
    return sorted((str(p.relative_to(lake.root)), p.stat().st_mtime_ns) for p in lake.root.rglob("*.parquet"))


def test_rescoring_with_the_contracts_own_scoring_function_reproduces_every_checkpoint(pipeline_copy):  # noqa: F811
    _, _, lake, _ = pipeline_copy
    before = lake_fingerprint(lake)
    [same] = what_if(lake, candidate_contract(default_contract(), scoring_function=DEFAULT_SCORING), 4, rescore=True, now=NOW)
    assert same["checkpoint_id"] == CID and same["reproduced"]
    assert all(d["change"] == "same" for d in same["diff"])
    assert lake_fingerprint(lake) == before  # nothing written


def test_a_candidate_scoring_function_that_reverses_the_scores_reverses_the_ranking(pipeline_copy):  # noqa: F811
    _, _, lake, _ = pipeline_copy
    stored = {e["model_id"]: e for e in json.loads(lake.read("checkpoints", WEEK_KEY)["entries"][0])}
    [moved] = what_if(lake, candidate_contract(default_contract(), scoring_function=CONTRARIAN), 4, rescore=True, now=NOW)
    assert not moved["reproduced"]
    # Worked example: three models with distinct stored ranks 1, 2, 3; negated scores rank them 3, 2, 1.
    ranks = {d["model_id"]: (d["previous_rank"], d["rank"]) for d in moved["diff"]}
    assert sorted(r for r, _ in ranks.values()) == [1, 2, 3] and len(stored) == 3
    assert all(new == 4 - old for old, new in ranks.values()), ranks
    assert sum(d["share_change"] for d in moved["diff"]) == 0  # shares move, the total stays exactly 100 %
    # Three entries: tiers 35 / 10 / 10 % plus the unallocated 45 % split equally → 50 / 25 / 25 %.
    top = next(d for d in moved["diff"] if d["rank"] == 1)
    assert top["reward_pct"] == 500_000_000 and top["previous_reward_pct"] == 250_000_000
    assert sorted(d["reward_pct"] for d in moved["diff"]) == [250_000_000, 250_000_000, 500_000_000]
    table = report_frame([moved])
    assert table.height == 3 and table["candidate_rank"].sort().to_list() == [1, 2, 3]
    assert stability([moved])["same_rank"] == 1  # only the middle model keeps its rank


def test_the_cli_takes_a_scoring_function(pipeline_copy, capsys):  # noqa: F811
    from coordinator_dagster.cli.main import main

    _, _, lake, _ = pipeline_copy
    assert main(["what-if", "--scoring-function", DEFAULT_SCORING, "--home", str(lake.home)]) == 0
    assert "reproduced exactly" in capsys.readouterr().out
    assert main(["what-if", "--scoring-function", CONTRARIAN, "--home", str(lake.home)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["reproduced"] == 0
    assert main(["what-if", "--scoring-function", "no.such:function", "--home", str(lake.home)]) == 2
    assert "no.such" in capsys.readouterr().err


def test_the_what_if_job_writes_its_own_table_from_launchpad_config(pipeline_copy):  # noqa: F811
    _, resources, lake, _ = pipeline_copy
    before = lake_fingerprint(lake)
    job = dg.Definitions(assets=default_assets, jobs=[what_if_job], resources=resources).resolve_job_def("what_if_job")

    def launch(**config):
        return job.execute_in_process(run_config={"ops": {"what_if_report": {"config": config}}}, raise_on_error=False)

    result = launch(scoring_function=CONTRARIAN, checkpoints=2)
    assert result.success
    [event] = result.asset_materializations_for_node("what_if_report")
    assert event.metadata["reproduced"].value == 0 and event.metadata["dagster/row_count"].value == 3
    table = pl.read_parquet(event.metadata["path"].value)
    assert table["checkpoint_id"].unique().to_list() == [CID] and not table["reproduced"].any()
    assert lake_fingerprint(lake) == before  # the pipeline's tables are untouched
    assert launch().asset_materializations_for_node("what_if_report")[0].metadata["reproduced"].value == 1
    failed = launch(build_emission="no.such:rule")
    assert not failed.success and "no.such" in str(failed.all_events)
    # A separate group: the table is not part of the pipeline's lineage of record.
    assert job.asset_layer.asset_graph.get(dg.AssetKey("what_if_report")).group_name == "what_if"
