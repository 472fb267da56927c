"""Density CRPS throughput: density-step scores per second, Synth-shaped.

Usage: .venv/bin/python benchmarks/density_scoring_benchmark.py [--densities 1000000] [--mixtures 50000] [--check 2000] [--volatility 200]

Builds `--densities` single-Gaussian densities spread over the Synth steps (60 s to 24 h) and
assets, with realised increments around them, and times `crps()` on them (the vectorized grid
integral, 1,024 points each); then `--mixtures` three-component mixtures of mixed families (the
direct-formula path) and, separately, the packing of canonical dicts (`encode`). With crunch-synth
installed (the dev group), `--check` densities are also scored by its `crps_integral`, one by one,
to print the largest relative difference and its rate for comparison. Last, `--volatility` answers
to a 1 h round (79 densities each, Gaussian and two-component mixtures) get the 1 h volatility term
(1,000 simulated paths each), the cost a 1 h round adds per model.
"""

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator_dagster.scoring.density import crps as grid  # noqa: E402
from coordinator_dagster.scoring.density import volatility  # noqa: E402

STEPS = np.array([60, 300, 900, 1800, 3600, 21600, 86400])


def _workload(n: int, rng: np.random.Generator):
    assets = list(grid.SYNTH_HALF_WIDTHS)
    base = np.array([grid.SYNTH_HALF_WIDTHS[a] for a in rng.choice(assets, n)])
    steps = rng.choice(STEPS, n)
    widths = np.array([grid.half_width(1.0, int(s)) for s in steps]) * base
    sigma = base * np.sqrt(steps / 300) / rng.uniform(4, 12, n)
    loc = rng.normal(0, 0.1, n) * sigma
    observed = rng.normal(0, 1.2, n) * sigma
    return loc, sigma, observed, widths


def _hourly_answer(rng: np.random.Generator, mixtures: bool) -> dict:
    out = {}
    for step in (60, 300, 900, 1800, 3600):
        sigma = 60 * (step / 60) ** 0.5
        norm = {"type": "builtin", "name": "norm", "params": {"loc": 0.0, "scale": float(sigma * rng.uniform(0.7, 1.4))}}
        wide = {"type": "builtin", "name": "norm", "params": {"loc": 0.0, "scale": 3 * sigma}}
        density = {"type": "mixture", "components": [{"density": norm, "weight": 0.8}, {"density": wide, "weight": 0.2}]} if mixtures else norm
        out[step] = [density] * (3600 // step)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--densities", type=int, default=1_000_000)
    parser.add_argument("--mixtures", type=int, default=50_000)
    parser.add_argument("--check", type=int, default=2000)
    parser.add_argument("--volatility", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    loc, sigma, observed, widths = _workload(args.densities, rng)
    encoded = grid.encode_gaussians(loc, sigma)
    start, cpu = time.perf_counter(), time.process_time()
    values = grid.crps(encoded, observed, widths)
    gaussian_s, gaussian_cpu = time.perf_counter() - start, time.process_time() - cpu
    # CPU time is what the work costs; wall time also counts waiting for a shared machine's cores.
    print(f"gaussian: {args.densities:,} density-step scores in {gaussian_s:.2f} s wall, {gaussian_cpu:.2f} s CPU "
          f"= {args.densities / gaussian_s:,.0f}/s wall")

    names = ["norm", "t", "laplace", "cauchy"]
    mixtures = []
    m_loc, m_sigma, m_obs, m_widths = _workload(args.mixtures, rng)
    for i in range(args.mixtures):
        parts = []
        for name in rng.choice(names, 3):
            params = {"loc": float(m_loc[i] * rng.uniform(0.5, 1.5)), "scale": float(m_sigma[i] * rng.uniform(0.5, 2))}
            if name == "t":
                params["df"] = float(rng.uniform(2, 10))
            parts.append({"density": {"type": "builtin", "name": str(name), "params": params}, "weight": float(rng.uniform(0.2, 1))})
        mixtures.append({"type": "mixture", "components": parts})
    start = time.perf_counter()
    packed = grid.encode(mixtures)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    grid.crps(packed, m_obs, m_widths)
    mixture_s = time.perf_counter() - start
    print(f"3-component mixtures: {args.mixtures:,} in {mixture_s:.2f} s = {args.mixtures / mixture_s:,.0f}/s "
          f"(packing the dicts: {args.mixtures / encode_s:,.0f}/s)")

    if args.check:
        try:
            from crunch_synth.tracker_evaluator import crps_integral
        except ImportError:
            print("crunch-synth not installed: no comparison")
        else:
            idx = rng.choice(args.densities, args.check, replace=False)
            start = time.perf_counter()
            theirs = np.array([
                crps_integral({"type": "builtin", "name": "norm", "params": {"loc": loc[i], "scale": sigma[i]}}, observed[i], -widths[i], widths[i])
                for i in idx
            ])
            ref_s = time.perf_counter() - start
            rel = np.max(np.abs(values[idx] - theirs) / np.abs(theirs))
            print(f"crunch-synth crps_integral, one by one: {args.check / ref_s:,.0f}/s; largest relative difference {rel:.1e}")

    if args.volatility:
        config = volatility.VolatilityConfig()
        realised = 90_000 + np.cumsum(rng.normal(0, 60, 61))
        for kind in ("gaussian", "2-component mixture"):
            answers = [_hourly_answer(rng, kind != "gaussian") for _ in range(args.volatility)]
            start = time.perf_counter()
            for i, answer in enumerate(answers):
                volatility.volatility_term("BTC", answer, realised, 1_790_000_000 + 720 * i, config)
            vol_s = time.perf_counter() - start
            print(f"1 h volatility term, {kind} answers: {args.volatility:,} in {vol_s:.2f} s = {args.volatility / vol_s:,.0f} answers/s")

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
