"""Choosing between values: `where`, `masked_fill` and dropout.

Gradients flow only to the values that were chosen; the mask itself is not learned.
"""
import numpy as np

from minisum import checks
from minisum.autograd import Function, Tensor
from minisum.backend import get_array_module, uniform
from minisum.ops.arithmetic import sum_to


def _boolean_mask(op, mask):
    """`mask` as a boolean array; a 0/1 integer or a float mask is refused, as PyTorch does
    (`~` of an integer 1 is -2, not False)."""
    mask = mask.data if isinstance(mask, Tensor) else mask
    if not hasattr(mask, "dtype") or isinstance(mask, np.generic):
        mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"{op}: the mask must be boolean, got an array of {mask.dtype}: "
                        "pass mask != 0 (or mask.astype(bool))")
    return mask


class Where(Function):
    """y = a where cond else b (broadcasting).   da = dy where cond, db = dy elsewhere."""

    promotes = True

    def __init__(self, cond):
        self.cond = cond  # boolean (_boolean_mask)

    def forward(self, a, b):
        xp = get_array_module(a, b)
        self.shapes, self.cond = (a.shape, b.shape), xp.asarray(self.cond)  # a host mask moves to the device
        return xp.where(self.cond, a, b)

    def backward(self, gy):
        ga = sum_to(gy * self.cond, self.shapes[0]) if self.needs_grad[0] else None
        gb = sum_to(gy * ~self.cond, self.shapes[1]) if self.needs_grad[1] else None
        return ga, gb


def where(cond, a, b):
    """a where the boolean `cond` is True, else b (each may broadcast)."""
    return Where(_boolean_mask("where", cond))(a, b)


def masked_fill(x, mask, value):
    """x with `value` wherever the boolean mask is True (e.g. -1e9 on masked attention scores).
    The result has x's dtype, as in PyTorch: a number value is cast to it."""
    mask = _boolean_mask("masked_fill", mask)
    if isinstance(x, Tensor) and not isinstance(value, Tensor) and not hasattr(value, "shape"):
        value = get_array_module(x.data).full((), value, dtype=x.dtype)  # 0-d: it never promotes x
    return Where(mask)(value, x)


class Dropout(Function):
    """Training: y = x * m / (1 - p) with m ~ Bernoulli(1 - p).   dx = dy * m / (1 - p).

    Scaling by 1 / (1 - p) keeps the expected activation unchanged, so evaluation is the
    identity (see `dropout`). With p = 1 every value is dropped: y = 0, dx = 0.
    """

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        xp = get_array_module(x)
        keep = uniform(xp, x.shape, x.dtype) >= self.p
        scale = 0 if self.p == 1 else 1 / (1 - self.p)
        self.mask = keep * x.dtype.type(scale)  # (...,) zeros and 1/(1-p)
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


def dropout(x, p, training):
    """Dropout with probability p in [0, 1] while training; the identity in evaluation or when p is 0."""
    checks.real("p", p)
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    return Dropout(p)(x)
