"""Elementwise arithmetic with NumPy broadcasting: add, sub, mul, div, neg, pow.

Broadcasting copies an input along some axes in the forward pass, so in the backward
pass the gradient of that input is summed back over those axes: that is `sum_to`.
"""
from minisum.autograd import Function


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

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        # BEGIN TASK 1.3 backward of add, sub, mul, div, neg, pow
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])
        # END TASK 1.3


class Sub(Function):
    """y = a - b.   dy/da = 1, dy/db = -1."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        # BEGIN TASK 1.3
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])
        # END TASK 1.3


class Mul(Function):
    """y = a * b.   dy/da = b, dy/db = a."""

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
    """y = x^p for a constant exponent p.   dy/dx = p x^(p-1)."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        self.x = x
        return x ** self.p

    def backward(self, gy):
        # BEGIN TASK 1.3
        return gy * self.p * self.x ** (self.p - 1)
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
    return Pow(p)(x)
