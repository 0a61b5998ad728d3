"""Choosing between values: `where`, `masked_fill` and dropout.

Gradients flow only to the values that were chosen; the mask itself is not learned.
"""
from minisum.autograd import Function, Tensor
from minisum.backend import get_array_module, uniform
from minisum.ops.arithmetic import sum_to


class Where(Function):
    """y = a where cond else b (broadcasting).   da = dy where cond, db = dy elsewhere."""

    def __init__(self, cond):
        self.cond = cond.data if isinstance(cond, Tensor) else cond

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return get_array_module(a, b).where(self.cond, a, b)

    def backward(self, gy):
        ga = sum_to(gy * self.cond, self.shapes[0]) if self.needs_grad[0] else None
        gb = sum_to(gy * ~self.cond, self.shapes[1]) if self.needs_grad[1] else None
        return ga, gb


def where(cond, a, b):
    return Where(cond)(a, b)


def masked_fill(x, mask, value):
    """x with `value` wherever mask is True (e.g. -1e9 on masked attention scores)."""
    return Where(mask)(value, x)


class Dropout(Function):
    """Training: y = x * m / (1 - p) with m ~ Bernoulli(1 - p).   dx = dy * m / (1 - p).

    Scaling by 1 / (1 - p) keeps the expected activation unchanged, so evaluation is the
    identity (see `dropout`).
    """

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        xp = get_array_module(x)
        keep = uniform(xp, x.shape, x.dtype) >= self.p
        self.mask = keep * x.dtype.type(1 / (1 - self.p))  # (...,) zeros and 1/(1-p)
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


def dropout(x, p, training):
    """Dropout with probability p while training; the identity in evaluation or when p is 0."""
    if not training or p == 0:
        return x
    return Dropout(p)(x)
