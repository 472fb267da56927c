"""The volatility term of Synth's 1 h score: how well the paths implied by a model's densities
reproduce the realised volatility of the hour (crunch-synth ≥ 0.15's `score_volatility`, which the
live coordinator adds to the price CRPS of 1 h rounds for BTC, ETH, SOL, XRP and HYPE).

For one answer to a round at T with horizon H (one hour) and finest step s (one minute):
1. Paths. `num_paths` (1,000) draws of every density, step by step in the answer's step order,
   from one legacy Mersenne-Twister stream seeded with crc32("ASSET:T+H") (a mixture first picks
   each draw's component, then draws each component's share), the same stream the participant
   package's global-state sampler reads, so the draws agree to the bit. The step resolutions are
   then made consistent coarse to fine: each group of finer increments is shifted equally so it
   sums to the coarser increment it splits. The finest increments, accumulated from the realised
   price at T, give price paths on T, T+s, ..., T+H.
2. Realised path: on the same grid, the closest recorded price if within s/2, else a gap. No term
   when the price at T is missing or fewer than two points are known.
3. Volatility of a block: the standard deviation (ddof 1) of the step returns inside it, in basis
   points; a block with fewer than two known returns is skipped (so is a block size shorter than
   two of the answer's finest steps). Blocks of 60, 15 and 5 minutes
   (1, 4 and 12 blocks).
4. Each realised block volatility is scored by the ensemble CRPS against the paths' volatilities
   of that block (E|X − y| − ½ E|X − X′|). The term is λ (5.25) × the mean over the three block
   sizes of the mean per-block CRPS, i.e. weight λ / (3 × blocks of that size) per block.
5. It is in Synth's units; it is converted into the units of the normalised price CRPS by a
   per-asset factor (`VOL_UNIT_FACTORS`, the participant package's typical live values; the live
   coordinator takes a per-round median instead, which a node without Synth's own price CRPS
   cannot compute) and added to the round CRPS.

An answer whose densities cannot be turned into price paths (a sampler error, a zero price, a
non-finite result) is FAILED, as the live coordinator counts it; the participant package would
score its price CRPS alone and warn.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats

VOL_HORIZON_SECONDS = 3600
VOL_ASSETS = frozenset({"BTC", "ETH", "SOL", "XRP", "HYPE"})
VOL_LAMBDA = 5.25
VOL_BLOCK_SECONDS = (3600, 900, 300)
VOL_NUM_PATHS = 1000
# Synth volatility-CRPS units → normalised price-CRPS units (crunch-synth 0.15.0's values).
VOL_UNIT_FACTORS: dict[str, float] = {
    "BTC": 0.00310804, "ETH": 0.00183436, "SOL": 0.00161268, "XRP": 0.00204925, "HYPE": 0.00389259,
}


class VolatilityError(ValueError):
    """The densities cannot be turned into price paths whose volatility can be scored."""


@dataclass(frozen=True)
class VolatilityConfig:
    """Which rounds carry the term and its constants (Synth's by default)."""

    assets: frozenset[str] = VOL_ASSETS
    horizon_seconds: int = VOL_HORIZON_SECONDS
    lam: float = VOL_LAMBDA
    block_seconds: tuple[int, ...] = VOL_BLOCK_SECONDS
    num_paths: int = VOL_NUM_PATHS
    unit_factors: Mapping[str, float] = field(default_factory=lambda: dict(VOL_UNIT_FACTORS))

    def applies(self, subject: str, densities: Mapping[int, Sequence[Any]]) -> bool:
        """Whether an answer's round carries the term: its finest step spans the configured horizon
        for a configured asset."""
        if subject not in self.assets or not densities:
            return False
        finest = min(densities)
        return finest * len(densities[finest]) == self.horizon_seconds


@dataclass(frozen=True)
class VolatilityTerm:
    vol_crps: float  # weighted volatility CRPS, Synth's units
    vol_score: float  # the same in normalised price-CRPS units: what the round CRPS gains


def seed_for(subject: str, resolution_epoch: int) -> int:
    """The sampler's seed for one round of one asset (the same for every model)."""
    return zlib.crc32(f"{subject}:{int(resolution_epoch)}".encode())


def _sample(density: Mapping[str, Any], n: int, stream: np.random.RandomState) -> np.ndarray:
    if density["type"] == "mixture":
        components = density["components"]
        weights = np.array([abs(c["weight"]) for c in components], dtype=float)
        weights /= weights.sum()
        chosen = stream.choice(len(components), size=n, p=weights)
        out = np.empty(n)
        for j, component in enumerate(components):
            rows = np.flatnonzero(chosen == j)
            if len(rows):
                out[rows] = _sample(component["density"], len(rows), stream)
        return out
    distribution = getattr(scipy.stats, density["name"])
    accepted = {"loc", "scale", *(s.strip() for s in (distribution.shapes or "").split(",") if s.strip())}
    params = {k: v for k, v in density["params"].items() if k in accepted}
    return np.asarray(distribution.rvs(size=n, random_state=stream, **params), dtype=float)


def _is_norm(density: Mapping[str, Any]) -> bool:
    return density["type"] == "builtin" and density["name"] == "norm"


def _step_draws(densities: Sequence[Mapping[str, Any]], num_paths: int, stream: np.random.RandomState) -> np.ndarray:
    """(num_paths, len(densities)) draws, density after density from the stream."""
    if all(_is_norm(d) for d in densities):
        # Consecutive normal draws of one stream are one standard-normal block: draw it at once.
        z = stream.standard_normal((len(densities), num_paths))
        loc = np.array([d["params"]["loc"] for d in densities], dtype=float)[:, None]
        scale = np.array([d["params"]["scale"] for d in densities], dtype=float)[:, None]
        return (z * scale + loc).T
    return np.stack([_sample(d, num_paths, stream) for d in densities], axis=1)


def simulate_paths(densities: Mapping[int, Sequence[Mapping[str, Any]]], start_price: float, seed: int, num_paths: int = VOL_NUM_PATHS) -> np.ndarray:
    """Price paths (num_paths, horizon // finest step + 1) implied by an answer's densities."""
    stream = np.random.RandomState(seed)
    increments = {step: _step_draws(items, num_paths, stream) for step, items in densities.items()}
    order = sorted(increments, reverse=True)  # coarse to fine
    for parent, child in zip(order[:-1], order[1:]):
        ratio = parent // child
        coarse, fine = increments[parent], increments[child]
        if ratio * coarse.shape[1] != fine.shape[1]:
            raise VolatilityError(f"steps {parent} s and {child} s do not nest over the horizon")
        groups = fine.reshape(num_paths, coarse.shape[1], ratio)
        shift = (coarse - groups.sum(axis=2)) / ratio
        increments[child] = (groups + shift[:, :, None]).reshape(num_paths, fine.shape[1])
    finest = increments[order[-1]]
    paths = np.zeros((num_paths, finest.shape[1] + 1))
    paths[:, 1:] = np.cumsum(finest, axis=1)
    return start_price + paths


def step_returns(paths: np.ndarray) -> np.ndarray:
    """(rows, steps) returns between consecutive points, in basis points."""
    return np.diff(paths, axis=1) / paths[:, :-1] * 10_000


def block_volatility(paths: np.ndarray, block_steps: int, returns: np.ndarray | None = None) -> np.ndarray:
    """(rows, blocks) standard deviation of the step returns in bps per whole block; NaN where a
    block has fewer than two known returns."""
    returns = step_returns(paths) if returns is None else returns
    blocks = returns.shape[1] // block_steps
    cut = returns[:, : blocks * block_steps].reshape(returns.shape[0], blocks, block_steps)
    known = ~np.isnan(cut)
    if known.all():  # simulated paths: no gaps, the plain standard deviation is the same number
        return cut.std(axis=2, ddof=1) if block_steps >= 2 else np.full(cut.shape[:2], np.nan)
    enough = np.sum(known, axis=2) >= 2
    out = np.full(enough.shape, np.nan)
    out[enough] = np.nanstd(cut[enough], axis=1, ddof=1)
    return out


def ensemble_crps(observed: np.ndarray, forecasts: np.ndarray) -> np.ndarray:
    """CRPS of each column's ensemble (forecasts: members × columns) against observed[column]:
    E|X − y| − ½ E|X − X′|, the spread from the sorted members; NaN members are ignored."""
    observed = np.asarray(observed, dtype=float)
    if np.isnan(forecasts).any():
        return np.array([ensemble_crps(observed[i:i + 1], forecasts[~np.isnan(forecasts[:, i]), i:i + 1])[0] for i in range(len(observed))])
    n = forecasts.shape[0]
    if n == 0:
        return np.full(len(observed), np.nan)
    x = np.sort(forecasts, axis=0)
    rank_weight = (2.0 * np.arange(n) - n + 1.0)[:, None]
    spread = 2.0 * np.sum(rank_weight * x, axis=0) / (n * n)
    return np.mean(np.abs(x - observed[None, :]), axis=0) - 0.5 * spread


def weighted_vol_crps(paths: np.ndarray, realised: np.ndarray, increment: int, config: VolatilityConfig) -> float:
    """Σ over block sizes of λ / (sizes × blocks) × Σ over the realised path's known blocks of the
    ensemble CRPS of its volatility."""
    total = 0.0
    simulated_returns, realised_returns = step_returns(paths), step_returns(realised[None, :])
    for block_seconds in config.block_seconds:
        block_steps = int(block_seconds / increment)
        if block_steps < 2:  # coarser answers than Synth's (no 1-minute step): no block has two returns
            continue
        actual = block_volatility(realised[None, :], block_steps, realised_returns)[0]
        known = np.flatnonzero(~np.isnan(actual))
        if not len(known):
            continue
        simulated = block_volatility(paths, block_steps, simulated_returns)
        weight = config.lam / (len(config.block_seconds) * (config.horizon_seconds // block_seconds))
        total += weight * float(np.sum(ensemble_crps(actual[known], simulated[:, known])))
    return total


def volatility_term(subject: str, densities: Mapping[int, Sequence[Mapping[str, Any]]], realised: np.ndarray, resolution_epoch: int, config: VolatilityConfig) -> VolatilityTerm | None:
    """The term for one answer, given the realised prices on its finest grid (NaN for gaps); None
    when the round does not carry it or the realised path is too thin to score."""
    if not config.applies(subject, densities):
        return None
    realised = np.asarray(realised, dtype=float)
    if np.isnan(realised[0]) or np.count_nonzero(~np.isnan(realised)) < 2:
        return None
    increment = min(densities)
    try:
        paths = simulate_paths(densities, float(realised[0]), seed_for(subject, resolution_epoch), config.num_paths)
    except VolatilityError:
        raise
    except Exception as error:  # the sampler's own complaint is the reason the answer failed
        raise VolatilityError(f"cannot simulate price paths from the densities: {error}") from error
    if paths.shape[1] != len(realised):
        raise VolatilityError(f"paths have {paths.shape[1]} points, the hour has {len(realised)}")
    if np.any(paths == 0):
        raise VolatilityError("a simulated path reaches a price of zero")
    vol_crps = weighted_vol_crps(paths, realised, increment, config)
    if not np.isfinite(vol_crps):
        raise VolatilityError("the volatility CRPS is not finite")
    return VolatilityTerm(vol_crps, config.unit_factors[subject] * vol_crps)
