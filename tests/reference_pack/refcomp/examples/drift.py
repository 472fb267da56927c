"""A reference-style model that answers from what it was handed, so a test can read it back."""

from refcomp.cruncher import ModelBaseClass


class Drift(ModelBaseClass):
    def _predict(self, subject, resolve_horizon_seconds, step_seconds):
        data = self.latest[subject]
        candles = data["candles_1m"]
        first, last = candles[0], candles[-1]
        return {
            "value": last["close"] - first["close"],
            "asof": data["asof_ts"],
            "count": len(candles),
            "keys": sorted(last),
            "call": [subject, resolve_horizon_seconds, step_seconds],
        }
