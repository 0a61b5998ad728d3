"""Ops that move values around without changing them: reshape, transpose, getitem, concat.

Their backward moves the gradient back the same way: reshape it back, transpose it back,
scatter it into the indexed positions, split it between the concatenated pieces.
"""
import itertools

from minisum.autograd import Function, Tensor
from minisum.backend import add_at, get_array_module


class Reshape(Function):
    """y = x viewed with another shape.   dx = dy reshaped to x's shape."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    """y = x with its axes permuted (reversed by default).   dx = dy with the inverse permutation."""

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        self.ndim = x.ndim
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        inverse = [0] * self.ndim
        for i, a in enumerate(self.axes):
            inverse[a % self.ndim] = i
        return gy.transpose(inverse)


class GetItem(Function):
    """y = x[index] (slices, integer arrays, masks).

    dx = zeros with dy added at the indexed positions; added, not assigned, because an
    index array may pick the same element several times.
    """

    def __init__(self, index):
        self.index = index.data if isinstance(index, Tensor) else index

    def forward(self, x):
        self.shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        # BEGIN TASK 3.1
        gx = get_array_module(gy).zeros(self.shape, dtype=gy.dtype)
        return add_at(gx, self.index, gy)
        # END TASK 3.1


class Concat(Function):
    """y = the inputs joined along `axis`.   Each input's gradient is its slice of dy."""

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        cuts = list(itertools.accumulate(self.sizes[:-1]))
        return tuple(get_array_module(gy).split(gy, cuts, axis=self.axis))


def reshape(x, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape(shape)(x)


def transpose(x, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Transpose(axes or None)(x)


def getitem(x, index):
    return GetItem(index)(x)


def concat(tensors, axis=0):
    return Concat(axis)(*tensors)
