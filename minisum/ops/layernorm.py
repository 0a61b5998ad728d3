"""Layer normalisation over the last axis, fused into one forward and one backward.

y = (x - mean) / sqrt(var + eps) * w + b. Written as a chain of small ops it would
store a dozen intermediate arrays; fused, it keeps only each row's mean and 1/std, and
backward recomputes x_hat from them and x (which the graph holds anyway), as llm.c does:
one (..., C) array fewer per layer norm while the graph waits for backward.
`layer_norm_composite` in ops/composite.py is its composite twin, which the tests compare with.
The backward, derived step by step: docs/derivations.md#layer-norm
"""
from minisum.autograd import Function
from minisum.backend import get_array_module


class LayerNorm(Function):
    """y = x_hat * w + b with x_hat = (x - mean(x)) * rstd, rstd = 1 / sqrt(var(x) + eps).

    With g = dy * w (the gradient reaching x_hat), over the C features of each row:
        dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))
        dw = sum over rows of dy * x_hat,   db = sum over rows of dy.
    """

    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, x, weight, bias):
        xp = get_array_module(x)
        mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
        x_hat = x - mean  # (..., C), centred; normalised in place below
        var = (x_hat * x_hat).mean(axis=-1, keepdims=True)  # (..., 1)
        rstd = 1 / xp.sqrt(var + self.eps)  # (..., 1)
        x_hat *= rstd
        self.x, self.mean, self.rstd, self.weight = x, mean, rstd, weight
        y = x_hat * weight
        y += bias
        return y

    def backward(self, gy):
        x_hat = (self.x - self.mean) * self.rstd  # (..., C), as in forward
        # BEGIN TASK 2.2 layer norm backward
        C = x_hat.shape[-1]
        g = gy * self.weight  # (..., C)
        gx = self.rstd * (g - g.mean(axis=-1, keepdims=True)
                          - x_hat * (g * x_hat).mean(axis=-1, keepdims=True))
        gw = (gy * x_hat).reshape(-1, C).sum(axis=0)
        gb = gy.reshape(-1, C).sum(axis=0)
        return gx, gw, gb
        # END TASK 2.2


def layer_norm(x, weight, bias, eps=1e-5):
    """Layer norm of x (..., C) over its last axis, with weight and bias of shape (C,)."""
    features = (x.shape[-1],) if len(x.shape) else ()
    for name, value in (("weight", weight), ("bias", bias)):
        if tuple(value.shape) != features:
            raise ValueError(f"layer_norm: {name} of shape {tuple(value.shape)} must have shape {features}, "
                             f"the last axis of x {tuple(x.shape)}")
    return LayerNorm(eps)(x, weight, bias)
