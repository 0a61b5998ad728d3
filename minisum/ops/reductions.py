"""Reductions: sum, mean, max over some axes.

The backward of a reduction spreads the output gradient back over the reduced axes:
evenly for sum (and divided by the count for mean), to the maximal entries for max.
"""
from minisum.autograd import Function
from minisum.backend import get_array_module


def _keepdims_shape(shape, axis):
    """The shape of x.sum(axis, keepdims=True), so a reduced gradient broadcasts back."""
    if axis is None:
        return (1,) * len(shape)
    axes = (axis,) if isinstance(axis, int) else axis
    axes = {a % len(shape) for a in axes}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    """y = sum of x over `axis`.   dy/dx_i = 1 for every x_i summed."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape = x.shape
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
        self.shape = x.shape
        y = x.mean(axis=self.axis, keepdims=self.keepdims)
        self.count = x.size // y.size  # how many values each output averages
        return y

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
        self.x = x
        self.y = x.max(axis=self.axis, keepdims=True)
        return self.y if self.keepdims else self.y.reshape(x.max(axis=self.axis).shape)

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
