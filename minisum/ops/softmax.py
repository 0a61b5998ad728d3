"""Softmax and log-softmax over the last axis.

Both subtract the row maximum first: exp of a large logit overflows float32, and the
shift cancels out of the result.
The backward, derived step by step: docs/derivations.md#softmax-and-cross-entropy
"""
from minisum.autograd import Function
from minisum.backend import get_array_module


def softmax_forward(x):
    """y_i = e^(x_i) / sum_j e^(x_j) over the last axis."""
    xp = get_array_module(x)
    if x.size == 0:  # nothing to normalise, and an empty axis has no max
        return xp.empty_like(x)
    e = x - x.max(axis=-1, keepdims=True)
    xp.exp(e, out=e)  # in place: one (..., V) array in all
    e /= e.sum(axis=-1, keepdims=True)
    return e


def softmax_backward(gy, y):
    """dx_i = y_i (dy_i - sum_j dy_j y_j): the Jacobian diag(y) - y y^T applied to dy."""
    # BEGIN TASK 2.1 softmax, log-softmax and cross-entropy backward
    return y * (gy - (gy * y).sum(axis=-1, keepdims=True))
    # END TASK 2.1


def log_softmax_backward(gy, y):
    """dx_i = dy_i - softmax(x)_i sum_j dy_j, with softmax(x) = e^y."""
    # BEGIN TASK 2.1
    xp = get_array_module(gy)
    return gy - xp.exp(y) * gy.sum(axis=-1, keepdims=True)
    # END TASK 2.1


def _as_rows(x):
    """x with at least one axis: a 0-d tensor is one row of one value, as in PyTorch
    (its softmax is 1, its log-softmax 0)."""
    return x.reshape(x.shape or (1,))


class Softmax(Function):
    """y = softmax(x) over the last axis.   dx = y * (dy - sum(dy * y))."""

    def forward(self, x):
        self.shape = x.shape
        self.y = softmax_forward(_as_rows(x))
        return self.y.reshape(self.shape)

    def backward(self, gy):
        return softmax_backward(_as_rows(gy), self.y).reshape(self.shape)


class LogSoftmax(Function):
    """y = x - log sum_j e^(x_j) over the last axis.   dx = dy - softmax(x) * sum(dy)."""

    def forward(self, x):
        xp = get_array_module(x)
        self.shape, x = x.shape, _as_rows(x)
        if x.size == 0:
            self.y = xp.empty_like(x)
            return self.y.reshape(self.shape)
        shifted = x - x.max(axis=-1, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
        return self.y.reshape(self.shape)

    def backward(self, gy):
        return log_softmax_backward(_as_rows(gy), self.y).reshape(self.shape)


def softmax(x):
    return Softmax()(x)


def log_softmax(x):
    return LogSoftmax()(x)
