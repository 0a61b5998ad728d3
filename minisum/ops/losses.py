"""The fused losses: softmax cross-entropy, binary cross-entropy with logits, mean squared error.

Each returns a scalar mean. Fusing log-softmax with the negative log-likelihood gives the
famous gradient softmax(z) - onehot(y): one array, no division by tiny probabilities.
The backward, derived step by step: docs/derivations.md#softmax-and-cross-entropy
"""
import numpy as np

from minisum import checks
from minisum.autograd import Function, Tensor
from minisum.backend import get_array_module, is_cupy_array
from minisum.ops.arithmetic import sum_to
from minisum.ops.elementwise import sigmoid_forward


def check_targets(op, logits_shape, targets, ignore_index):
    """Class targets as PyTorch requires them: integers, one per row of logits (..., V), each in
    [0, V) or equal to `ignore_index`. A negative target would silently read class V - 1.
    Targets already on the GPU are checked for dtype and shape only: reading their values
    would make the step wait for the GPU (as for embedding ids). There an out-of-range target
    makes the loss NaN instead (`nan_where_out_of_range`), so a training script stops the run."""
    targets = targets.data if isinstance(targets, Tensor) else targets
    if not hasattr(targets, "dtype") or isinstance(targets, np.generic):
        targets = np.asarray(targets)
    checks.integer_ids(f"{op} targets", targets)
    if targets.shape != tuple(logits_shape[:-1]):
        raise ValueError(f"{op}: targets of shape {targets.shape} do not fit logits of shape {tuple(logits_shape)}: "
                         f"one target per row, shape {tuple(logits_shape[:-1])}")
    if is_cupy_array(targets):
        return targets
    V = logits_shape[-1]
    bad = (targets < 0) | (targets >= V)
    if ignore_index is not None:
        bad &= targets != ignore_index
    if bad.any():
        raise ValueError(f"{op} targets must be class indices in [0, {V}) or ignore_index ({ignore_index}), "
                         f"got {targets[bad][0]}")
    return targets


def nan_where_out_of_range(xp, targets, keep, V, dtype):
    """NaN for each kept target outside [0, V), 0 elsewhere: on the GPU, where `check_targets`
    cannot read the targets without a wait, a bad one poisons the loss rather than silently
    reading another class. None on the host, where check_targets has refused it already."""
    if xp is np:
        return None
    return xp.where(keep & ((targets < 0) | (targets >= V)), dtype.type(np.nan), dtype.type(0))


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
        poison = nan_where_out_of_range(xp, y, self.keep, V, nll.dtype)
        if poison is not None:
            nll += poison
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

    dz = (sigmoid(z) - y) / N,   dy = -z / N. The first form never takes the log of 0 nor overflows exp.
    """

    def forward(self, logits, targets):
        xp = get_array_module(logits)
        self.logits, self.targets_dtype = logits, targets.dtype
        self.targets = targets.astype(logits.dtype)
        loss = xp.maximum(logits, 0) - logits * self.targets + xp.log1p(xp.exp(-xp.abs(logits)))
        return loss.mean()

    def backward(self, gy):
        scale = gy / self.logits.size
        gz = (sigmoid_forward(self.logits) - self.targets) * scale if self.needs_grad[0] else None
        gt = (-self.logits * scale).astype(self.targets_dtype, copy=False) if self.needs_grad[1] else None
        return gz, gt


class MSE(Function):
    """L = mean((p - t)^2) over the N entries of p - t (p and t broadcast, as in PyTorch).

    dp = 2 (p - t) / N,   dt = -dp, each summed back to its input's shape."""

    def forward(self, pred, target):
        self.shapes, self.target_dtype = (pred.shape, target.shape), target.dtype
        self.diff = pred - target.astype(pred.dtype, copy=False)  # a float64 target must not promote the loss
        return (self.diff * self.diff).mean()

    def backward(self, gy):
        g = self.diff * (2 * gy / self.diff.size)  # (broadcast shape)
        gp = _undo_broadcast(g, self.shapes[0]) if self.needs_grad[0] else None
        gt = _undo_broadcast(-g, self.shapes[1]).astype(self.target_dtype, copy=False) if self.needs_grad[1] else None
        return gp, gt


def _undo_broadcast(grad, shape):
    """sum_to, called only where p and t did broadcast (sum_to is a task of the course, and a
    loss of equal shapes runs without it)."""
    return grad if grad.shape == shape else sum_to(grad, shape)


def cross_entropy(logits, targets, ignore_index=None):
    """Mean softmax cross-entropy of logits (..., V) against integer targets (...) in [0, V),
    over the targets that are not `ignore_index` (0 when every target is ignored)."""
    logits_shape = logits.shape if hasattr(logits, "shape") else np.shape(logits)
    targets = check_targets("cross_entropy", logits_shape, targets, ignore_index)
    return CrossEntropy(ignore_index)(logits, targets)


def binary_cross_entropy_with_logits(logits, targets):
    """Mean binary cross-entropy of logits against targets of the same shape (probabilities)."""
    logits_shape = logits.shape if hasattr(logits, "shape") else np.shape(logits)
    targets_shape = targets.shape if hasattr(targets, "shape") else np.shape(targets)
    if tuple(targets_shape) != tuple(logits_shape):
        raise ValueError(f"binary_cross_entropy_with_logits: targets of shape {tuple(targets_shape)} must have "
                         f"the shape of the logits, {tuple(logits_shape)}")
    return BCEWithLogits()(logits, targets)


def mse_loss(pred, target):
    return MSE()(pred, target)
