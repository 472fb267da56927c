"""A tournament contract written as crunch-node operators write theirs (their module names,
their `CrunchConfig` fields, a scoring function over typed models)."""
