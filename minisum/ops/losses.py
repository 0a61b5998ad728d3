"""The fused losses: softmax cross-entropy, binary cross-entropy with logits, mean squared error.

Each returns a scalar mean. Fusing log-softmax with the negative log-likelihood gives the
famous gradient softmax(z) - onehot(y): one array, no division by tiny probabilities.
The backward, derived step by step: docs/derivations.md#softmax-and-cross-entropy
"""
from minisum.autograd import Function
from minisum.backend import get_array_module


class CrossEntropy(Function):
    """L = -(1/N) sum_i log softmax(z_i)[y_i] over the N rows whose target is not `ignore_index`.

    logits z (..., V), targets y (...) integers.
    dz_i = (softmax(z_i) - onehot(y_i)) / N for counted rows, 0 for ignored rows.
    """

    def __init__(self, ignore_index=None):
        self.ignore_index = ignore_index

    def forward(self, logits, targets):
        xp = get_array_module(logits)
        V = logits.shape[-1]
        z = logits.reshape(-1, V)  # (N, V)
        y = targets.reshape(-1)  # (N,)
        self.keep = xp.ones(y.shape, dtype=bool) if self.ignore_index is None else y != self.ignore_index
        self.count = xp.maximum(self.keep.sum(), 1).astype(logits.dtype)  # on the device: no wait for a GPU
        self.y = xp.where(self.keep, y, 0)  # any valid row index; ignored rows are masked out below
        rows = xp.arange(z.shape[0])

        shifted = z - z.max(axis=-1, keepdims=True)  # (N, V)
        probs = xp.exp(shifted)
        total = probs.sum(axis=-1, keepdims=True)  # (N, 1)
        probs /= total
        self.probs, self.shape = probs, logits.shape
        nll = xp.log(total[:, 0]) - shifted[rows, self.y]  # (N,)
        return (nll * self.keep).sum() / self.count

    def backward(self, gy):
        # BEGIN TASK 2.1
        xp = get_array_module(gy)
        scale = (self.keep * (gy / self.count)).astype(self.probs.dtype)[:, None]  # (N, 1)
        gz = self.probs * scale  # (N, V)
        gz[xp.arange(gz.shape[0]), self.y] -= scale[:, 0]
        return gz.reshape(self.shape), None
        # END TASK 2.1


class BCEWithLogits(Function):
    """L = mean(max(z, 0) - z y + log(1 + e^-|z|)) = mean(-y log s(z) - (1 - y) log(1 - s(z))).

    dz = (sigmoid(z) - y) / N. The first form never takes the log of 0 nor overflows exp.
    """

    def forward(self, logits, targets):
        xp = get_array_module(logits)
        self.logits, self.targets = logits, targets.astype(logits.dtype)
        loss = xp.maximum(logits, 0) - logits * self.targets + xp.log1p(xp.exp(-xp.abs(logits)))
        return loss.mean()

    def backward(self, gy):
        xp = get_array_module(gy)
        s = 0.5 * (xp.tanh(0.5 * self.logits) + 1)
        return (s - self.targets) * (gy / self.logits.size), None


class MSE(Function):
    """L = mean((p - t)^2).   dp = 2 (p - t) / N,   dt = -dp."""

    def forward(self, pred, target):
        self.diff = pred - target.astype(pred.dtype, copy=False)  # a float64 target must not promote the loss
        return (self.diff * self.diff).mean()

    def backward(self, gy):
        gp = self.diff * (2 * gy / self.diff.size)
        return gp, -gp


def cross_entropy(logits, targets, ignore_index=None):
    return CrossEntropy(ignore_index)(logits, targets)


def binary_cross_entropy_with_logits(logits, targets):
    return BCEWithLogits()(logits, targets)


def mse_loss(pred, target):
    return MSE()(pred, target)
