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
    e = x - x.max(axis=-1, keepdims=True)
    xp.exp(e, out=e)  # in place: one (..., V) array in all
    e /= e.sum(axis=-1, keepdims=True)
    return e


def softmax_backward(gy, y):
    """dx_i = y_i (dy_i - sum_j dy_j y_j): the Jacobian diag(y) - y y^T applied to dy."""
    # BEGIN TASK 2.1 softmax, log-softmax and cross-entropy backward
    return y * (gy - (gy * y).sum(axis=-1, keepdims=True))
    # END TASK 2.1


class Softmax(Function):
    """y = softmax(x) over the last axis.   dx = y * (dy - sum(dy * y))."""

    def forward(self, x):
        self.y = softmax_forward(x)
        return self.y

    def backward(self, gy):
        return softmax_backward(gy, self.y)


class LogSoftmax(Function):
    """y = x - log sum_j e^(x_j) over the last axis.   dx = dy - softmax(x) * sum(dy)."""

    def forward(self, x):
        xp = get_array_module(x)
        shifted = x - x.max(axis=-1, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
        self.y = y
        return y

    def backward(self, gy):
        # BEGIN TASK 2.1
        xp = get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=-1, keepdims=True)
        # END TASK 2.1


def softmax(x):
    return Softmax()(x)


def log_softmax(x):
    return LogSoftmax()(x)
