"""Running sums of a training or validation pass, kept on the device.

Adding a batch's loss and hits never waits for the GPU: the sums stay where the values
are, and `read()` brings them to the host in one transfer, once per logging interval. A
non-finite loss or a loss far above the untrained model's is `Diverged`, found at that read.
With several ranks each sums its share of every batch and `read()` adds the ranks' sums up
(every rank calls it at the same batch), so every rank reads the same global values.
"""
import math

import numpy as np

from minisum import backend
from minisum.distributed import World


class Diverged(Exception):
    """The loss or the parameters became non-finite, or the loss far too large."""


class Meter:
    """loss: the weighted mean of batch losses (weight 1 per batch: the mean of the batch
    losses; weight B: the mean over examples); accuracy: hits / counted targets."""

    def __init__(self, state=None, world=None):
        state = state or {}  # int() and float() refuse a malformed checkpoint's values
        self.batches, self.weight, self.count = (int(state.get(key, 0)) for key in ("batches", "weight", "count"))
        self.seconds = float(state.get("seconds", 0.0))
        self.world = world or World()
        self._sums = None  # (2,) float64 on the device: loss sum, hits (this rank's)
        self._host = np.array([float(state.get("loss_sum", 0.0)), int(state.get("hits", 0))], dtype=np.float64)

    def add(self, loss, weight=1, hits=None, count=0, share=1.0):
        """loss: 0-d device array; hits: 0-d device integer array or None; weight, count: host numbers,
        the whole batch's; share: this rank's weight in the batch's loss (1 with one rank)."""
        if self._sums is None:  # made on the device once per pass; a resumed pass's sums on one rank only
            self._sums = backend.to_device(self._host if self.world.is_main else np.zeros_like(self._host))
        self._sums[0] += loss * (weight * share)
        if hits is not None:
            self._sums[1] += hits
        self.batches += 1
        self.weight += weight
        self.count += count

    def read(self, limit=math.inf):
        """The sums on the host (one transfer); Diverged if the mean loss is not finite or above `limit`."""
        if self._sums is not None:
            self._host = backend.to_numpy(self.world.sum(self._sums)).copy()
        loss = self.loss
        if not math.isfinite(loss) or loss > limit:
            raise Diverged(f"the loss became {loss:.4g}" + (f" (above {limit:.3g})" if loss > limit else ""))
        return self

    @property
    def loss(self):
        return float(self._host[0]) / max(self.weight, 1)

    @property
    def accuracy(self):
        return float(self._host[1]) / max(self.count, 1)

    def state(self):
        """What a checkpoint keeps of an interrupted pass (call read() first)."""
        return {"batches": self.batches, "weight": self.weight, "count": self.count, "seconds": self.seconds,
                "loss_sum": float(self._host[0]), "hits": int(self._host[1])}


def stopped_diverged(name, err, epochs_done):
    """The line a script prints when model `name` diverged in the epoch after `epochs_done`."""
    kept = f"its last good checkpoint (epoch {epochs_done}) is kept" if epochs_done else "it had no checkpoint yet"
    return f"{name}: {err} in epoch {epochs_done + 1}; stopped training this model (a lower --lr may help); {kept}"


def run_diverged(names, results_path):
    """The error that ends a run in which the models `names` diverged (exit status 3), raised
    after the other models finished and everything was saved."""
    return Diverged(f"{', '.join(names)} diverged (see above): no result is reported from "
                    f"{'it' if len(names) == 1 else 'them'}; the run's records are in {results_path}")


def check_parameters(params):
    """Diverged unless every parameter is finite (one transfer for all of them)."""
    params = list(params)
    xp = backend.get_array_module(params[0].data)
    bad = sum(xp.count_nonzero(~xp.isfinite(p.data)) for p in params)
    if int(bad):
        raise Diverged(f"{int(bad)} parameter values became non-finite")


def untrained_limit(classes):
    """The limit on a classifier's loss: 10 x ln(classes), ten times the untrained model's loss."""
    return 10 * math.log(max(classes, 2))
