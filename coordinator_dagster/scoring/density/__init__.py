"""Density forecasts (the Synth competitions): what a density answer may hold and how it is checked
(`spec`), the CRPS of densities against realised incremental returns on the participant package's
integration grid (`crps`), and how one round's CRPS values become normalised scores and asset-weighted
totals (`rounds`). Plain numpy/polars functions; nothing here runs models or touches the lake."""
