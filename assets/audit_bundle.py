"""`audit_bundle`: one immutable archive per checkpoint that re-derives it offline."""

import dagster as dg

from assets.checkpoints import checkpoint_id
from coordinator_dagster.audit import bundle
from coordinator_dagster.audit.verify import verify_bundle
from coordinator_dagster.partitions import CHECKPOINT_PARTITIONS
from resources import ClockResource, Contract, LakeResource

BUNDLE_VERIFIES = "bundle_verifies"


def build_audit_bundle_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="audit_bundle",
        partitions_def=partitions_def,
        deps=["checkpoints"],
        kinds={"parquet"},
        group_name="audit",
        check_specs=[dg.AssetCheckSpec(BUNDLE_VERIFIES, asset="audit_bundle")],
    )
    def audit_bundle(context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract, clock: ClockResource) -> dg.MaterializeResult:
        """One zip per checkpoint period (grain: one archive per distinct checkpoint build): the
        period's feed records, inputs, predictions, scores, snapshots and models (Parquet), the
        contract's settings with its callables' code hashes, the emission JSON and the Merkle root,
        with a manifest of sha256 checksums (`coordinator_dagster.audit.bundle`).

        Written once and never rewritten: a checkpoint rebuilt with other data gets another file.
        The bundle is verified as soon as it is written (`coordinator audit verify` does the same
        anywhere); the check reports the first difference if it does not verify.
        """
        store = lake.get(contract)
        cid = checkpoint_id(context.partition_key)
        try:
            path, new = bundle.build_bundle(store, contract, cid, clock.now())
        except bundle.NotBundled as exc:
            return dg.MaterializeResult(
                metadata={"checkpoint_id": cid, "bundle": f"not built: {exc}"},
                check_results=[dg.AssetCheckResult(check_name=BUNDLE_VERIFIES, passed=True, description=f"no bundle: {exc}")],
            )
        verdict = verify_bundle(path)
        return dg.MaterializeResult(
            metadata={
                "checkpoint_id": cid,
                "bundle": dg.MetadataValue.path(str(path)),
                "bytes": path.stat().st_size,
                "new_file": new,
                "verify": f"coordinator audit verify {path}",
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=BUNDLE_VERIFIES,
                    passed=verdict.ok,
                    description="the bundle re-derives its scores, snapshots, ranking, emission and Merkle root",
                    metadata={"verdict": verdict.message, "checked": dg.MetadataValue.md("\n".join(f"- {c}" for c in verdict.checked))},
                )
            ],
        )

    return audit_bundle


audit_bundle = build_audit_bundle_asset(CHECKPOINT_PARTITIONS["weekly"])
