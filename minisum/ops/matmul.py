"""Matrix products: `matmul` (batched, broadcasting) and the fused `linear` layer.

For C = A @ B the chain rule gives dA = dC @ B^T and dB = A^T @ dC; batch axes that
were broadcast are summed back with `sum_to`.
"""
from minisum.autograd import Function
from minisum.ops.arithmetic import add, sum_to


def _swap_last(x):
    return x.swapaxes(-1, -2)


def _check_inner_sizes(a_shape, b_shape):
    """Raise an error naming both shapes: NumPy's own names neither ("size 4 is different from 3")."""
    if not a_shape or not b_shape:
        return  # 0-d operands: NumPy's own error says so
    inner_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if a_shape[-1] != inner_b:
        raise ValueError(f"matmul: shapes {a_shape} and {b_shape} do not fit "
                         f"({a_shape[-1]} columns against {inner_b} rows)")


class MatMul(Function):
    """C = A @ B with A (..., n, k), B (..., k, m) -> C (..., n, m).

    dA = dC @ B^T,   dB = A^T @ dC   (then summed over broadcast batch axes).
    Mixed dtypes are promoted (float32 @ float64 is float64), where PyTorch refuses them.
    """

    promotes = True

    def forward(self, a, b):
        _check_inner_sizes(a.shape, b.shape)
        self.a, self.b = a, b
        return a @ b

    def backward(self, gc):
        # BEGIN TASK 1.6 backward of matmul and linear
        a, b = self.a, self.b
        if b.ndim == 1:  # (n, k) @ (k,): treat b as a column (first, so that (k,) @ (k,) works)
            b, gc = b[:, None], gc[..., None]
        if a.ndim == 1:  # (k,) @ (k, m): treat a as a row
            a, gc = a[None, :], gc[..., None, :]
        ga = sum_to(gc @ _swap_last(b), a.shape).reshape(self.a.shape) if self.needs_grad[0] else None
        gb = sum_to(_swap_last(a) @ gc, b.shape).reshape(self.b.shape) if self.needs_grad[1] else None
        return ga, gb
        # END TASK 1.6


class Linear(Function):
    """y = x @ W^T + b with x (..., in), W (out, in) as PyTorch stores it, b (out,).

    dx = dy @ W,   dW = dy^T @ x (over all leading axes),   db = sum of dy over leading axes.
    Without a bias, backward returns the two gradients of x and W.
    Fused because it is the most common op: one GEMM per gradient, no transposed copies.
    """

    promotes = True

    def forward(self, x, weight, bias=None):
        if x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} "
                             f"(out_features, in_features): its last axis must be {weight.shape[1]}")
        self.x, self.weight = x, weight
        y = x.reshape(-1, x.shape[-1]) @ weight.T  # (N, out): one 2-D GEMM, faster than a batched one
        if bias is not None:
            y += bias
        return y.reshape(*x.shape[:-1], weight.shape[0])  # (..., out)

    def backward(self, gy):
        # BEGIN TASK 1.6
        out_features, in_features = self.weight.shape
        gy2 = gy.reshape(-1, out_features)  # (N, out)
        gx = (gy2 @ self.weight).reshape(self.x.shape) if self.needs_grad[0] else None
        gw = gy2.T @ self.x.reshape(-1, in_features) if self.needs_grad[1] else None  # (out, in)
        if len(self.needs_grad) == 2:  # no bias
            return gx, gw
        gb = gy2.sum(axis=0) if self.needs_grad[2] else None
        return gx, gw, gb
        # END TASK 1.6


def matmul(a, b):
    return MatMul()(a, b)


def linear(x, weight, bias=None):
    """x @ weight^T + bias. A bias of another shape than (out,), say (1,), broadcasts as in
    PyTorch: it is added by `add`, whose backward sums its gradient back to its shape."""
    if bias is None:
        return Linear()(x, weight)
    bias_shape = bias.shape if hasattr(bias, "shape") else ()  # a Tensor or an array; a number is 0-d
    if tuple(bias_shape) != (weight.shape[0],):
        return add(Linear()(x, weight), bias)
    return Linear()(x, weight, bias)
