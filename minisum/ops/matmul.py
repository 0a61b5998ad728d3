"""Matrix products: `matmul` (batched, broadcasting) and the fused `linear` layer.

For C = A @ B the chain rule gives dA = dC @ B^T and dB = A^T @ dC; batch axes that
were broadcast are summed back with `sum_to`.
"""
from minisum.autograd import Function
from minisum.ops.arithmetic import sum_to


def _swap_last(x):
    return x.swapaxes(-1, -2)


class MatMul(Function):
    """C = A @ B with A (..., n, k), B (..., k, m) -> C (..., n, m).

    dA = dC @ B^T,   dB = A^T @ dC   (then summed over broadcast batch axes).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gc):
        # BEGIN TASK 1.5 backward of matmul and linear
        a, b = self.a, self.b
        if a.ndim == 1:  # (k,) @ (k, m): treat a as a row
            a, gc = a[None, :], gc[..., None, :]
        if b.ndim == 1:  # (n, k) @ (k,): treat b as a column
            b, gc = b[:, None], gc[..., None]
        ga = sum_to(gc @ _swap_last(b), a.shape).reshape(self.a.shape) if self.needs_grad[0] else None
        gb = sum_to(_swap_last(a) @ gc, b.shape).reshape(self.b.shape) if self.needs_grad[1] else None
        return ga, gb
        # END TASK 1.5


class Linear(Function):
    """y = x @ W^T + b with x (..., in), W (out, in) as PyTorch stores it, b (out,).

    dx = dy @ W,   dW = dy^T @ x (over all leading axes),   db = sum of dy over leading axes.
    Fused because it is the most common op: one GEMM per gradient, no transposed copies.
    """

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        y = x @ weight.T  # (..., out)
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        # BEGIN TASK 1.5
        out_features, in_features = self.weight.shape
        gy2 = gy.reshape(-1, out_features)  # (N, out)
        gx = (gy2 @ self.weight).reshape(self.x.shape) if self.needs_grad[0] else None
        gw = gy2.T @ self.x.reshape(-1, in_features) if self.needs_grad[1] else None  # (out, in)
        gb = gy2.sum(axis=0) if len(self.needs_grad) > 2 and self.needs_grad[2] else None
        return gx, gw, gb
        # END TASK 1.5


def matmul(a, b):
    return MatMul()(a, b)


def linear(x, weight, bias=None):
    if bias is None:
        return Linear()(x, weight)
    return Linear()(x, weight, bias)
