"""Cumulative sum along an axis: the causal summation of the paper.

s_t = p_1 + ... + p_t. Each output is the sum of every input up to its position, so an
input p_u affects every output from u on, and its gradient is the sum of the output
gradients from u to the end: a cumulative sum run backwards.

`np.cumsum` along the time axis of a (B, T, C) array is slow (it walks memory with a
stride); adding whole (B, C) slices in a loop over t is about 6x faster at T 256.
`cumsum_composite` in ops/composite.py is its composite twin: a lower-triangular matmul.
The backward, derived step by step: docs/derivations.md#the-causal-sum-cumsum
"""
import numpy as np

from minisum.autograd import Function
from minisum.backend import get_array_module
from minisum.ops.reductions import normalize_axis


def cumsum_forward(x, axis):
    """s[.., t, ..] = sum of x[.., u, ..] for u <= t."""
    # BEGIN TASK 3.2 causal summation, forward and backward
    xp = get_array_module(x)
    if xp is not np:  # on a GPU the loop would launch one kernel per position; CuPy's cumsum is one kernel
        return xp.cumsum(x, axis=axis)
    s = x.copy()
    steps = np.moveaxis(s, axis, 0)  # a view of s: steps[t] is position t
    for t in range(1, len(steps)):
        steps[t] += steps[t - 1]
    return s
    # END TASK 3.2


def cumsum_backward(gs, axis):
    """dx[.., u, ..] = sum of ds[.., t, ..] for t >= u: a reversed cumulative sum."""
    # BEGIN TASK 3.2
    xp = get_array_module(gs)
    if xp is not np:
        return xp.flip(xp.cumsum(xp.flip(gs, axis), axis=axis), axis)
    gx = gs.copy()
    steps = np.moveaxis(gx, axis, 0)
    for t in range(len(steps) - 2, -1, -1):
        steps[t] += steps[t + 1]
    return gx
    # END TASK 3.2


class CumSum(Function):
    """s = cumsum(x, axis).   dx = reversed cumsum of ds along the same axis."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        if x.ndim == 0:  # one value is its own running sum (axis 0 or -1), as in PyTorch
            return x.copy()
        return cumsum_forward(x, self.axis)

    def backward(self, gs):
        return gs if gs.ndim == 0 else cumsum_backward(gs, self.axis)


def cumsum(x, axis=1):
    """Running sum along `axis` (default 1: the time axis of a (B, T, C) batch)."""
    if isinstance(axis, (tuple, list)):
        raise TypeError(f"cumsum: axis must be one integer, got {axis!r}")
    ndim = x.ndim if hasattr(x, "ndim") else np.ndim(x)
    normalize_axis(axis, ndim, "cumsum")  # one clear error for an axis out of range
    return CumSum(axis)(x)
