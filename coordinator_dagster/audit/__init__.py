"""Audit bundles: a checkpoint packed with everything needed to re-derive it offline.

`record` writes a contract down as data (its settings, and its callables by name with a hash of
their code) and rebuilds it; `derive` is the chain checkpoint numbers come from (scores →
snapshots → ranking → emission → Merkle root), shared by the bundle's writer and its verifier;
`bundle` collects a checkpoint's period from the lake into an immutable zip with a manifest of
sha256 checksums; `verify` recomputes every derived member from the bundle alone and names the
first difference.
"""
