"""A competition package written to the reference engine's interface (not a copy of its files)."""
