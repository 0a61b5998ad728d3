"""Elementwise arithmetic with NumPy broadcasting: add, sub, mul, div, neg, pow, abs.

Broadcasting copies an input along some axes in the forward pass, so in the backward
pass the gradient of that input is summed back over those axes: that is `sum_to`.
The inputs of add, sub, mul, div and pow are first cast to one dtype by PyTorch's rule
(autograd.result_dtype): a float32 model stays float32 next to integers and 0-d float64 values.
"""
import numpy as np

from minisum.autograd import Function, Tensor, result_dtype
from minisum.backend import get_array_module


def sum_to(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    Broadcasting prepends axes and stretches axes of size 1; the gradient of a value used
    many times is the sum of the gradients of its uses.
    """
    # BEGIN TASK 1.2 sum_to: undo broadcasting
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
    # END TASK 1.2


class Add(Function):
    """y = a + b.   dy/da = 1, dy/db = 1."""

    promotes = True

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        # BEGIN TASK 1.3 backward of add, sub, mul, div, neg, pow
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])
        # END TASK 1.3


class Sub(Function):
    """y = a - b.   dy/da = 1, dy/db = -1."""

    promotes = True

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        # BEGIN TASK 1.3
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])
        # END TASK 1.3


class Mul(Function):
    """y = a * b.   dy/da = b, dy/db = a."""

    promotes = True

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        # BEGIN TASK 1.3
        ga = sum_to(gy * self.b, self.a.shape) if self.needs_grad[0] else None
        gb = sum_to(gy * self.a, self.b.shape) if self.needs_grad[1] else None
        return ga, gb
        # END TASK 1.3


class Div(Function):
    """y = a / b.   dy/da = 1 / b, dy/db = -a / b^2."""

    promotes = True

    def result_dtype(self, inputs):
        dtype = result_dtype(inputs)
        return dtype if dtype.kind in "fc" else np.dtype(np.float32)  # true division, as PyTorch: 1 / 2 is 0.5

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        # BEGIN TASK 1.3
        gx = gy / self.b
        ga = sum_to(gx, self.a.shape) if self.needs_grad[0] else None
        gb = sum_to(-gx * self.a / self.b, self.b.shape) if self.needs_grad[1] else None
        return ga, gb
        # END TASK 1.3


class Neg(Function):
    """y = -x.   dy/dx = -1."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        # BEGIN TASK 1.3
        return -gy
        # END TASK 1.3


class Pow(Function):
    """y = x^p for a constant exponent p.   dy/dx = p x^(p-1), and 0 for p = 0 (also at x = 0)."""

    promotes = True

    def __init__(self, p):
        self.p = p

    def result_dtype(self, inputs):
        return result_dtype([*inputs, self.p])  # an integer tensor to the power 0.5 is float32

    def forward(self, x):
        self.x = x
        return x ** self.p

    def backward(self, gy):
        # BEGIN TASK 1.3
        if self.p == 0:  # y = 1 everywhere; p x^(p-1) would be 0 * inf at x = 0
            return get_array_module(gy).zeros_like(gy)
        return gy * self.p * self.x ** (self.p - 1)
        # END TASK 1.3


class PowTensor(Function):
    """y = a^b for a tensor exponent b (broadcasting).

    dy/da = b a^(b-1) (0 where b = 0),   dy/db = a^b ln a (0 where a = 0 and b >= 0, as PyTorch).
    """

    promotes = True

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        # BEGIN TASK 1.3
        xp = get_array_module(gy)
        a, b = self.a, self.b
        ga = gb = None
        if self.needs_grad[0]:
            ga = sum_to(xp.where(b == 0, xp.zeros_like(gy), gy * b * a ** (b - 1)), a.shape)
        if self.needs_grad[1]:
            gb = sum_to(gy * self.y * xp.log(xp.where(a == 0, xp.ones_like(a), a)), b.shape)
        return ga, gb
        # END TASK 1.3


def add(a, b):
    return Add()(a, b)


def sub(a, b):
    return Sub()(a, b)


def mul(a, b):
    return Mul()(a, b)


def div(a, b):
    return Div()(a, b)


def neg(x):
    return Neg()(x)


def pow(x, p):
    """x ** p: with a number p, a constant exponent; with a tensor (or array) p, both get gradients."""
    exponent_is_array = isinstance(p, Tensor) or (hasattr(p, "shape") and not isinstance(p, np.generic))
    if isinstance(x, Tensor) and not exponent_is_array:
        return Pow(p.item() if isinstance(p, np.generic) else p)(x)  # a NumPy integer must not promote float32
    return PowTensor()(x, p)  # also 2 ** x


def abs(x):
    """|x| = x * sign(x): its gradient sign(x) (0 at 0, as PyTorch) comes from mul's backward."""
    data = x.data if isinstance(x, Tensor) else x
    return mul(x, get_array_module(data).sign(data))
