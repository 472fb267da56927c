"""Trading competitions scored by simulated PnL: the cost model and limits (config.py), one
model's book of positions (book.py), the signal modes that turn a model's answer into an order
(signals.py), the deterministic replay of predictions over a price feed into PnL frames
(replay.py), the state one replay window hands to the next (state.py) and the per-model
performance figures (performance.py).

Money is exact: every amount is a `Decimal` computed in SIMULATION_CONTEXT (34 significant
digits, half to even, the IEEE decimal128 rules) and every amount written to a frame is rounded
half to even to 12 decimal places (`pl.Decimal(38, 12)`). Plain functions and small classes over
polars frames; nothing here imports Dagster, the lake's writers or the API.
"""

from coordinator_dagster.scoring.trading.config import CostModel, TradingConfig
from coordinator_dagster.scoring.trading.replay import TradingReplay, replay

__all__ = ["CostModel", "TradingConfig", "TradingReplay", "replay"]
