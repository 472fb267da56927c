"""In-house density trackers for the density pipeline tests (imported by the tests and, through
the manifest, by model worker processes: keep this module light)."""

import threading

RELEASE = threading.Event()  # set by the tests when done, so an in-process Slow thread ends
TICKS: list[tuple[str, int]] = []  # (class, prices in the tick): what each in-process tick carried


class Wide:
    """One wide Gaussian for every interval; records what each tick carried."""

    scale = 50.0

    def __init__(self):
        self.seen = 0

    def tick(self, data):
        self.seen += sum(len(v) for v in data.values())
        TICKS.append((type(self).__name__, sum(len(v) for v in data.values())))

    def predict_all(self, asset, horizon, steps):
        # loc carries how many prices the tracker has seen, so a test can read its warm-up back.
        density = {"type": "builtin", "name": "norm", "params": {"loc": float(self.seen), "scale": self.scale}}
        return {step: [density] * (horizon // step) for step in steps}


class Narrow(Wide):
    scale = 5.0


class Invalid(Wide):
    def predict_all(self, asset, horizon, steps):
        return {step: [{"type": "builtin", "name": "norm", "params": {"loc": 0.0, "scale": -1.0}}] * (horizon // step) for step in steps}


class Slow(Wide):
    def predict_all(self, asset, horizon, steps):
        RELEASE.wait(30)
        return super().predict_all(asset, horizon, steps)
