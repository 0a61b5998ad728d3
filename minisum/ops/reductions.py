"""Reductions: sum, mean, max over some axes.

The backward of a reduction spreads the output gradient back over the reduced axes:
evenly for sum (and divided by the count for mean), to the maximal entries for max.
"""
import math
import numbers

from minisum.autograd import Function
from minisum.backend import get_array_module


def normalize_axis(axis, ndim, op):
    """`axis` (None, an integer or a tuple or list of them, negative counting from the end) as
    None or a sorted tuple of axes in [0, ndim). A 0-d tensor takes axis 0 or -1 and reduces
    nothing, as in PyTorch. Anything else is an error naming the axis and the allowed range."""
    if axis is None:
        return None
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes):
        raise TypeError(f"{op}: axis must be an integer or a tuple of integers, got {axis!r}")
    rank = ndim or 1  # a 0-d tensor takes axis 0 or -1, as one of one axis
    for a in axes:
        if not -rank <= a < rank:
            raise IndexError(f"{op}: axis {a} is out of range for a tensor of {ndim} dimension(s): "
                             f"allowed are {-rank} to {rank - 1}")
    normal = sorted(int(a) % rank for a in axes)
    if len(set(normal)) != len(normal):
        raise ValueError(f"{op}: axis {axis!r} names an axis twice")
    return tuple(normal) if ndim else ()


def _keepdims_shape(shape, axis):
    """The shape of x.sum(axis, keepdims=True), so a reduced gradient broadcasts back
    (`axis`: None or a tuple from normalize_axis)."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


class Sum(Function):
    """y = sum of x over `axis`.   dy/dx_i = 1 for every x_i summed."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape, self.axis = x.shape, normalize_axis(self.axis, x.ndim, "sum")
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        # BEGIN TASK 1.5 backward of sum, mean, max
        xp = get_array_module(gy)
        gy = gy.reshape(_keepdims_shape(self.shape, self.axis))
        return xp.broadcast_to(gy, self.shape)
        # END TASK 1.5


class Mean(Function):
    """y = mean of x over `axis` (N values).   dy/dx_i = 1 / N."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape, self.axis = x.shape, normalize_axis(self.axis, x.ndim, "mean")
        # how many values each output averages: 0 for an empty axis, whose mean is NaN as in PyTorch
        self.count = x.size if self.axis is None else math.prod(x.shape[a] for a in self.axis)
        return x.mean(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        # BEGIN TASK 1.5
        xp = get_array_module(gy)
        gy = gy.reshape(_keepdims_shape(self.shape, self.axis)) / self.count
        return xp.broadcast_to(gy, self.shape)
        # END TASK 1.5


class Max(Function):
    """y = max of x over `axis`.   dy/dx_i = 1 / k where x_i is one of the k maxima, else 0."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axis = normalize_axis(self.axis, x.ndim, "max")
        reduced = range(x.ndim) if self.axis is None else self.axis
        if any(x.shape[a] == 0 for a in reduced):
            raise ValueError(f"max: a tensor of shape {x.shape} has no maximum over the empty axis "
                             f"(axis={self.axis}); PyTorch refuses it too")
        self.x = x
        self.y = x.max(axis=self.axis, keepdims=True)  # (..., 1, ...): broadcasts against x in backward
        if self.keepdims:
            return self.y
        return self.y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in reduced))

    def backward(self, gy):
        # BEGIN TASK 1.5
        is_max = (self.x == self.y).astype(gy.dtype)  # as floats: bool / int count would be float64
        share = is_max / is_max.sum(axis=self.axis, keepdims=True)  # ties split the gradient
        return gy.reshape(self.y.shape) * share
        # END TASK 1.5


def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    return Mean(axis, keepdims)(x)


def max(x, axis=None, keepdims=False):
    return Max(axis, keepdims)(x)
