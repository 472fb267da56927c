"""What a density answer may hold, and the check that turns a model's raw answer into canonical,
rounded densities or refuses it with a reason (the prediction is then FAILED with that reason).

A density is the participant package's dict shape: a builtin distribution
`{"type": "builtin", "name": "norm", "params": {"loc": 0.1, "scale": 2.0}}` or a mixture
`{"type": "mixture", "components": [{"density": <density>, "weight": 0.7}, ...]}` (nesting allowed).
The rules carried over from crunch-synth: at most three leaf distributions in all (nested mixtures
counted through), the builtin names and parameters its density evaluator knows, each parameter's
positivity constraint, and every weight and parameter rounded to six significant digits before it
is stored or scored. Stricter here, because the participant package would score them as garbage or
crash: a parameter must be a finite real number, a mixture needs a component with non-zero weight,
and `scipy` densities (arbitrary scipy.stats objects) are refused in favour of the builtin of the
same name. `{"type": "statistics", "name": "normal"}` is accepted and stored as the builtin `norm`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

MAX_COMPONENTS = 3
SIGNIFICANT_DIGITS = 6

# name → (parameters in the order the evaluator reads them, parameters that must be > 0)
BUILTIN_PARAMETERS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "norm": (("loc", "scale"), frozenset({"scale"})),
    "lognorm": (("s", "loc", "scale"), frozenset({"s", "scale"})),
    "expon": (("loc", "scale"), frozenset({"scale"})),
    "t": (("df", "loc", "scale"), frozenset({"df", "scale"})),
    "weibull_min": (("c", "loc", "scale"), frozenset({"c", "scale"})),
    "gamma": (("a", "loc", "scale"), frozenset({"a", "scale"})),
    "weibull_max": (("c", "loc", "scale"), frozenset({"c", "scale"})),
    "beta": (("a", "b", "loc", "scale"), frozenset({"a", "b", "scale"})),
    "chi": (("df", "loc", "scale"), frozenset({"df", "scale"})),
    "chi2": (("df", "loc", "scale"), frozenset({"df", "scale"})),
    "rayleigh": (("loc", "scale"), frozenset({"scale"})),
    "pareto": (("b", "loc", "scale"), frozenset({"b", "scale"})),
    "cauchy": (("loc", "scale"), frozenset({"scale"})),
    "laplace": (("loc", "scale"), frozenset({"scale"})),
    "f": (("dfn", "dfd", "loc", "scale"), frozenset({"dfn", "dfd", "scale"})),
}


class DensityError(ValueError):
    """A density answer that cannot be scored; the message is the prediction's failed reason."""


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """`value` rounded to `digits` significant digits (decimal rounding, as the participant package does)."""
    value = float(value)
    if value == 0.0:
        return 0.0
    return float(round(value, digits - math.floor(math.log10(abs(value))) - 1))


def leaf_count(density: Mapping[str, Any]) -> int:
    """Leaf distributions in a density, nested mixtures counted through."""
    if density.get("type") != "mixture":
        return 1
    return sum(leaf_count(c.get("density", {})) if isinstance(c, Mapping) else 1 for c in density.get("components") or [])


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DensityError(f"{where} must be a number, got {type(value).__name__} {repr(value)[:40]}")
    value = float(value)
    if not math.isfinite(value):
        raise DensityError(f"{where} must be finite, got {value}")
    return round_significant(value)


def _builtin(name: Any, params: Any, where: str) -> dict[str, Any]:
    if name not in BUILTIN_PARAMETERS:
        raise DensityError(f"{where}: unknown builtin distribution {name!r} (known: {', '.join(BUILTIN_PARAMETERS)})")
    if not isinstance(params, Mapping):
        raise DensityError(f"{where}: params must be a mapping, got {type(params).__name__}")
    required, positive = BUILTIN_PARAMETERS[name]
    missing = [p for p in required if p not in params]
    if missing:
        raise DensityError(f"{where}: {name} needs parameters {list(required)}, missing {missing}")
    canonical = {p: _number(params[p], f"{where}.params.{p}") for p in required}
    for p in required:
        if p in positive and canonical[p] <= 0:
            raise DensityError(f"{where}: {name} parameter {p} must be positive, got {canonical[p]}")
    return {"type": "builtin", "name": name, "params": canonical}


def _canonical(density: Any, where: str) -> dict[str, Any]:
    if not isinstance(density, Mapping):
        raise DensityError(f"{where} must be a mapping, got {type(density).__name__}")
    kind = density.get("type")
    if kind == "builtin":
        return _builtin(density.get("name"), density.get("params"), where)
    if kind == "statistics":
        if density.get("name") != "normal":
            raise DensityError(f"{where}: the only statistics distribution is 'normal', got {density.get('name')!r}")
        params = density.get("params") or {}
        if not isinstance(params, Mapping):
            raise DensityError(f"{where}: params must be a mapping")
        loc = params.get("mu", params.get("loc", 0.0))
        scale = params.get("sigma", params.get("scale", 1.0))
        return _builtin("norm", {"loc": loc, "scale": scale}, where)
    if kind == "mixture":
        components = density.get("components")
        if not isinstance(components, list) or not components:
            raise DensityError(f"{where}: a mixture needs a non-empty list of components")
        out = []
        for i, component in enumerate(components):
            at = f"{where}.components[{i}]"
            if not isinstance(component, Mapping) or "density" not in component or "weight" not in component:
                raise DensityError(f"{at} must be a mapping with 'density' and 'weight'")
            out.append({"density": _canonical(component["density"], f"{at}.density"), "weight": _number(component["weight"], f"{at}.weight")})
        if not any(c["weight"] != 0 for c in out):
            raise DensityError(f"{where}: every mixture weight is zero")
        return {"type": "mixture", "components": out}
    if kind == "scipy":
        raise DensityError(f"{where}: scipy densities are not accepted; use the builtin distribution of the same name")
    raise DensityError(f"{where}: unknown density type {kind!r} (builtin, mixture or statistics)")


def check_density(density: Any, where: str = "density") -> dict[str, Any]:
    """The canonical, rounded form of one density, or DensityError with the reason."""
    if isinstance(density, Mapping):
        leaves = leaf_count(density)
        if leaves > MAX_COMPONENTS:
            raise DensityError(f"{where} has {leaves} components (nested mixtures counted through); at most {MAX_COMPONENTS} are allowed")
    return _canonical(density, where)


def check_forecast(raw: Any, horizon_seconds: int, steps: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """A model's answer to one round, `{step: [density, ...]}`, checked against the round's request:
    every requested step up to the horizon present with exactly horizon // step densities (steps
    longer than the horizon are not asked for), each density valid. Keys may be JSON strings."""
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if isinstance(raw, Mapping) and set(raw) == {"densities"}:
        raw = raw["densities"]
    if not isinstance(raw, Mapping):
        raise DensityError(f"the answer must map each step to a list of densities, got {type(raw).__name__}")
    by_step: dict[int, Any] = {}
    for key, value in raw.items():
        try:
            by_step[int(key)] = value
        except (TypeError, ValueError):
            raise DensityError(f"step {key!r} is not a whole number of seconds") from None
    checked: dict[int, list[dict[str, Any]]] = {}
    # Trackers often repeat one density object over a whole step ([density] * n): check it once.
    # The canonical dicts are shared between positions and must be treated as read-only.
    memo: dict[int, dict[str, Any]] = {}

    def checked_density(density: Any, where: str) -> dict[str, Any]:
        key = id(density)
        if key not in memo:
            memo[key] = check_density(_unwrap(density), where)
        return memo[key]

    for step in steps:
        if step > horizon_seconds:
            continue
        expected = horizon_seconds // step
        densities = by_step.get(step)
        if densities is None:
            raise DensityError(f"no densities for step {step}")
        if not isinstance(densities, list) or len(densities) != expected:
            got = len(densities) if isinstance(densities, list) else type(densities).__name__
            raise DensityError(f"step {step}: expected {expected} densities, got {got}")
        checked[step] = [checked_density(d, f"step {step}, density {i}") for i, d in enumerate(densities)]
    return checked


def _unwrap(density: Any) -> Any:
    # The participant package's README shows each density wrapped as {"step": k, "prediction": {...}};
    # its example tracker returns the density itself with an extra "step" key. Both are accepted.
    if isinstance(density, Mapping) and "type" not in density and isinstance(density.get("prediction"), Mapping):
        return density["prediction"]
    return density


class DensityForecast(BaseModel):
    """A contract output type for density competitions: per requested step, the list of densities
    (one per step-long interval of the horizon). Densities are checked and rounded on validation;
    the per-round count check needs the round's horizon and steps (`check_forecast`)."""

    model_config = ConfigDict(frozen=True)

    densities: dict[int, list[dict[str, Any]]]

    @field_validator("densities", mode="before")
    @classmethod
    def _valid(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError("densities must map each step to a list of densities")
        try:
            return {int(k): [check_density(_unwrap(d), f"step {k}, density {i}") for i, d in enumerate(v)] for k, v in value.items()}
        except DensityError as exc:
            raise ValueError(str(exc)) from None
        except (TypeError, ValueError):
            raise ValueError("densities must map whole-second steps to lists of densities") from None
