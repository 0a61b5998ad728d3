"""Elementwise functions: exp, log, tanh, sigmoid, relu (of integers: float32, as PyTorch).

Each derivative is written in terms of what the forward pass already computed
(exp' = exp, tanh' = 1 - tanh^2, sigmoid' = s(1 - s)), so backward recomputes nothing.
"""
import numpy as np

from minisum.autograd import Function
from minisum.backend import get_array_module


class FloatFunction(Function):
    """A function whose value is a float: an integer or boolean input is cast to float32 first."""

    promotes = True

    def result_dtype(self, inputs):
        dtype = inputs[0].dtype if hasattr(inputs[0], "dtype") else np.asarray(inputs[0]).dtype
        return dtype if dtype.kind in "fc" else np.dtype(np.float32)


class Exp(FloatFunction):
    """y = e^x.   dy/dx = y."""

    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        # BEGIN TASK 1.4 backward of exp, log, tanh, sigmoid, relu
        return gy * self.y
        # END TASK 1.4


class Log(FloatFunction):
    """y = ln x.   dy/dx = 1 / x."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, gy):
        # BEGIN TASK 1.4
        return gy / self.x
        # END TASK 1.4


class Tanh(FloatFunction):
    """y = tanh x.   dy/dx = 1 - y^2."""

    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        # BEGIN TASK 1.4
        return gy * (1 - self.y * self.y)
        # END TASK 1.4


def sigmoid_forward(x):
    """1 / (1 + e^-x), written with e = e^-|x| <= 1 so that nothing overflows and the negative
    tail keeps its relative precision: e / (1 + e) for x < 0 (sigmoid(-40) is 4.2e-18, not 0)."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1, e) / (1 + e)


class Sigmoid(FloatFunction):
    """y = 1 / (1 + e^-x).   dy/dx = y (1 - y)."""

    def forward(self, x):
        self.y = sigmoid_forward(x)
        return self.y

    def backward(self, gy):
        # BEGIN TASK 1.4
        return gy * self.y * (1 - self.y)
        # END TASK 1.4


class Relu(Function):
    """y = max(x, 0).   dy/dx = 1 where x > 0, else 0."""

    def forward(self, x):
        self.positive = x > 0
        return get_array_module(x).maximum(x, 0)

    def backward(self, gy):
        # BEGIN TASK 1.4
        return gy * self.positive
        # END TASK 1.4


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def tanh(x):
    return Tanh()(x)


def sigmoid(x):
    return Sigmoid()(x)


def relu(x):
    return Relu()(x)
