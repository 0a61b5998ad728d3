"""Every public op and Tensor operator against PyTorch, on random inputs (issue 22).

Each case draws an op's inputs (float32 or float64; shapes with size-1 axes, broadcasting from
both sides, 0-d values and Python or NumPy numbers; contiguous, reversed, transposed or strided
views; moderate or extreme magnitudes), runs it in minisum and in PyTorch and compares the
values, the dtypes and shapes, and the gradients of every input for a random upstream gradient.
It also checks that no op writes into its inputs, that no gradient (and no output but a view's)
shares memory with the caller's arrays, that a repeated backward doubles the gradients, that
a released graph refuses a second backward, that no_grad records nothing, and that both sides
refuse the same bad inputs (test_both_refuse).

The seed is 0, or MINISUM_DIFFERENTIAL_SEED to explore further. The table of the worst errors
per op and dtype: `python tests/test_differential.py [seeds...]`. Skipped without PyTorch,
which minisum never needs.
"""
import contextlib
import os
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest

if __name__ == "__main__":  # run as a script from the repository's root: minisum is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

torch = pytest.importorskip("torch", reason="the differential test compares with PyTorch, which is not installed")
import torch.nn.functional as F  # noqa: E402

import minisum  # noqa: E402
from minisum import Tensor, no_grad, ops  # noqa: E402

pytestmark = [pytest.mark.needs_engine,  # every op's code, forward and backward
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]  # overflow to inf at extreme magnitudes, as in torch

SEED = int(os.environ.get("MINISUM_DIFFERENTIAL_SEED", "0"))
CASES_PER_OP = 150

# The tolerances, for every op alike. An entry's error is |ours - torch| / max(|torch|, floor):
# relative, except for entries far below the scale of the computation, where rounding in another
# order (NumPy's pairwise sums, PyTorch's vectorised ones) or a cancellation (1 - y^2 for y ~ 1 in
# tanh's gradient, p - 1 for p ~ 1 in the cross-entropy's) leaves an absolute error of some ulps
# of that scale. The floor is FLOOR times the scale: the largest |torch| of the array and, for a
# gradient, of the upstream gradient. So an entry passes when |ours - torch| <= TOLERANCE * |torch|
# or <= TOLERANCE * FLOOR * scale (1e-13 in float64, 1e-5 in float32, about 450 and 80 ulps).
# Entries that both sides give as subnormal or 0 agree (PyTorch flushes float32 x^-2 of 1e20 to 0).
TOLERANCE = {np.float64: 1e-10, np.float32: 2e-4}
FLOOR = {np.float64: 1e-3, np.float32: 5e-2}
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
               np.dtype(np.int64): torch.int64, np.dtype(np.bool_): torch.bool}

torch.set_num_threads(1)  # small arrays: threads only cost time


# ----- inputs ------------------------------------------------------------------------------
@dataclass
class Input:
    """One argument: a `leaf` (a tensor that requires grad), a `const` (a tensor that does not),
    or `raw` (passed as it is: a NumPy array, a NumPy or Python number, an index)."""
    value: object
    kind: str = "leaf"


@dataclass
class Case:
    ours: object  # (*args) -> Tensor (or (Tensor, hits))
    theirs: object  # (*args) -> torch.Tensor (or (tensor, hits))
    inputs: list
    view: bool = False  # the output may share memory with an input, as PyTorch's views do
    grads: bool = True  # compare gradients
    once: bool = False  # one backward per forward (the fused output layer hands its gradients over)
    tags: list = field(default_factory=list)


class Draw:
    """The random choices of one case."""

    def __init__(self, rng, dtype):
        self.rng, self.dtype = rng, np.dtype(dtype)

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p):
        return bool(self.rng.random() < p)

    def shape(self, most_dims=3, sizes=(1, 2, 3, 4)):
        return tuple(int(self.choice(sizes)) for _ in range(int(self.rng.integers(0, most_dims + 1))))

    def broadcast_pair(self):
        """Two shapes that broadcast together, each stretched where the other has a 1."""
        base = self.shape(sizes=(2, 3))
        pair = []
        for _ in range(2):
            s = [1 if self.chance(0.35) else n for n in base]
            pair.append(tuple(s[int(self.rng.integers(0, len(s) + 1)):] if self.chance(0.4) else s))
        return pair

    def array(self, shape, kind="normal", scale=None):
        """Values of `shape`: normal, positive (0.5 to 2), away (|x| >= 0.2); times a scale that
        is extreme now and then."""
        if kind == "positive":
            a = self.rng.uniform(0.5, 2.0, shape)
        else:
            a = self.rng.standard_normal(shape)
            if kind == "away":
                a = np.where(a >= 0, 1.0, -1.0) * (0.2 + np.abs(a))
        if scale is None:
            scale = self.choice([1.0] * 6 + [1e-20, 1e20])
        return self.layout(np.asarray(a * scale, dtype=self.dtype))  # an array even for shape ()

    def layout(self, a):
        """`a` itself, or an equal array that is a reversed, transposed or strided view."""
        if a.ndim == 0:
            return a
        how = self.choice(["contiguous", "contiguous", "reversed", "transposed", "strided"])
        if how == "reversed":
            return a[::-1].copy()[::-1]
        if how == "transposed":
            return a.T.copy().T
        if how == "strided":
            return np.repeat(a, 2, axis=-1)[..., ::2]
        return a

    def axis(self, ndim, allow_tuple=True):
        if ndim == 0:
            return self.choice([None, 0, -1])
        options = [None, int(self.rng.integers(-ndim, ndim)), np.int64(self.rng.integers(0, ndim))]
        if allow_tuple and ndim > 1:
            axes = sorted(self.rng.choice(ndim, size=int(self.rng.integers(1, ndim + 1)), replace=False).tolist())
            options += [tuple(axes), list(axes)]
        return self.choice(options)


def torch_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(int(a) for a in axis) if isinstance(axis, (tuple, list)) else int(axis)


def other_operand(d, shape, kind="normal"):
    """The second operand of an elementwise op: mostly a leaf; sometimes a number, a 0-d array
    of float64, an integer array or a NumPy scalar, whose dtype must not promote float32."""
    pick = d.choice(["leaf"] * 5 + ["python float", "python int", "numpy int", "numpy float", "0-d float64",
                                    "int array", "const"])
    positive = kind == "positive"
    if pick == "python float":
        return Input(float(d.rng.uniform(0.5, 2.0)) if positive else float(d.rng.standard_normal()), "raw")
    if pick == "python int":
        return Input(int(d.rng.integers(1, 4)), "raw")
    if pick == "numpy int":
        return Input(np.int64(d.rng.integers(1, 4)), "raw")
    if pick == "numpy float":
        return Input(np.float64(d.rng.uniform(0.5, 2.0)), "raw")
    if pick == "0-d float64":
        return Input(np.array(d.rng.uniform(0.5, 2.0)), "raw")
    if pick == "int array":
        return Input(d.rng.integers(1, 4, shape), "raw")
    return Input(d.array(shape, kind), "const" if pick == "const" else "leaf")


# ----- the ops -----------------------------------------------------------------------------
def binary(ours_op, torch_op, symbol, kind_b="normal"):
    def make(d):
        sa, sb = d.broadcast_pair()
        a, b = Input(d.array(sa)), other_operand(d, sb, kind_b)
        if kind_b == "positive" and b.kind != "raw":
            # a float32 divisor stays near 1: for b ~ 1e-20, dy/db = -a / b^2 ~ 1e40 is past float32's
            # range, and where each side overflows depends on its order of operations
            b = Input(d.array(sb, "positive", scale=1.0 if d.dtype == np.float32 else None), b.kind)
        if d.chance(0.3) and b.kind == "raw":  # the number on the left: the reflected operator
            return Case(lambda x, y: symbol(y, x), lambda x, y: torch_op(y, x), [a, b])
        if d.chance(0.5):
            return Case(lambda x, y: symbol(x, y), torch_op, [a, b])
        return Case(ours_op, torch_op, [a, b])
    return make


def unary(ours_op, torch_op, kind="normal", scales=(1.0,)):
    def make(d):
        return Case(ours_op, torch_op, [Input(d.array(d.shape(), kind, scale=d.choice(list(scales))))])
    return make


def make_pow(d):
    p = d.choice([0, 1, 2, 3, -1, 0.5, 2.5, -1.5, np.int64(2), 0.0])
    integer = float(p) == int(p)
    x = d.array(d.shape(), "away" if integer and p < 0 else "normal" if integer else "positive")
    if p == 0 and x.size:
        x.reshape(-1)[0] = 0  # x ** 0 at 0: gradient 0
    p_torch = p.item() if isinstance(p, np.generic) else p
    ours = (lambda t: t ** p) if d.chance(0.5) else (lambda t: ops.pow(t, p))
    return Case(ours, lambda t: t ** p_torch, [Input(x)])


def make_pow_tensor(d):
    sa, sb = d.broadcast_pair()
    if d.chance(0.3):  # 2 ** x: a number to a tensor power
        base = float(d.rng.uniform(0.5, 3.0))
        return Case(lambda e: base ** e, lambda e: base ** e, [Input(d.array(sb, scale=1.0))])
    return Case(lambda a, e: a ** e, lambda a, e: a ** e, [Input(d.array(sa, "positive", 1.0)),
                                                            Input(d.array(sb, scale=1.0))])


def make_abs(d):
    x = d.array(d.shape())
    if x.size and d.chance(0.3):
        x.reshape(-1)[0] = 0
    return Case(abs, torch.abs, [Input(x)])


def make_relu(d):
    return Case(lambda t: t.relu() if d.chance(0.5) else ops.relu(t), torch.relu, [Input(d.array(d.shape(), "away"))])


def reduction(name, torch_name):
    def make(d):
        x = d.array(d.shape(), "away" if name == "max" else "normal")
        if name == "max" and x.size > 1 and d.chance(0.3):
            x.reshape(-1)[1] = x.reshape(-1)[0]  # a tie: the gradient is split, as torch.amax does
        axis, keepdims = d.axis(x.ndim), d.chance(0.5)
        method = d.chance(0.5)

        def ours(t):
            return getattr(t, name)(axis=axis, keepdims=keepdims) if method else \
                getattr(ops, name)(t, axis=axis, keepdims=keepdims)

        def theirs(t):
            return getattr(torch, torch_name)(t, dim=torch_axis(axis, t.ndim), keepdim=keepdims)
        return Case(ours, theirs, [Input(x)])
    return make


def make_reshape(d):
    x = d.array(d.shape())
    sizes = [n for n in x.shape if n != 1] or [1]
    target = [int(np.prod(sizes))] if d.chance(0.5) else list(reversed(sizes)) + [1]
    if d.chance(0.3):
        target[0] = -1
    return Case(lambda t: t.reshape(*target), lambda t: t.reshape(*target), [Input(x)], view=True)


def make_transpose(d):
    x = d.array(d.shape())
    if d.chance(0.3):
        return Case(lambda t: t.T, lambda t: t.permute(tuple(reversed(range(t.ndim)))), [Input(x)], view=True)
    perm = [int(a) for a in d.rng.permutation(x.ndim)]
    return Case(lambda t: ops.transpose(t, perm), lambda t: t.permute(tuple(perm)), [Input(x)], view=True)


def make_getitem(d):
    x = d.array(d.shape() or (3,))
    how = d.choice(["slice", "int array", "mask", "int"])
    if how == "slice":
        index = tuple(slice(int(d.rng.integers(0, n)), None, int(d.choice([1, 2]))) for n in x.shape)
        torch_index = index
    elif how == "int array":
        index = d.rng.integers(0, x.shape[0], int(d.rng.integers(1, 6)))  # repeats add up
        torch_index = torch.as_tensor(index)
    elif how == "mask":
        index = d.rng.random(x.shape) < 0.5
        torch_index = torch.as_tensor(index)
    else:
        index = int(d.rng.integers(-x.shape[0], x.shape[0]))
        torch_index = index
    return Case(lambda t: t[index], lambda t: t[torch_index], [Input(x)], view=how in ("slice", "int"))


def make_concat(d):
    shape = d.shape() or (2,)
    axis = int(d.rng.integers(-len(shape), len(shape)))
    parts = []
    for _ in range(int(d.rng.integers(1, 4))):
        s = list(shape)
        s[axis] = int(d.rng.integers(1, 4))
        parts.append(Input(d.array(tuple(s)), d.choice(["leaf", "leaf", "const"])))
    return Case(lambda *ts: ops.concat(list(ts), axis=axis), lambda *ts: torch.cat(ts, dim=axis), parts)


def make_matmul(d):
    n, k, m = (int(d.rng.integers(1, 5)) for _ in range(3))
    form = d.choice(["vv", "vm", "mv", "mm", "batched"])
    a_shape, b_shape = {"vv": ((k,), (k,)), "vm": ((k,), (k, m)), "mv": ((n, k), (k,)), "mm": ((n, k), (k, m)),
                        "batched": ((2, 1, n, k), (3, k, m))}[form]
    a, b = Input(d.array(a_shape, scale=1.0)), Input(d.array(b_shape, scale=1.0), d.choice(["leaf", "const"]))
    if d.chance(0.5):
        return Case(lambda x, y: x @ y, lambda x, y: x @ y, [a, b])
    return Case(ops.matmul, torch.matmul, [a, b])


def make_linear(d):
    lead = d.shape(most_dims=2)
    n_in, n_out = int(d.rng.integers(1, 5)), int(d.rng.integers(1, 5))
    x, w = Input(d.array((*lead, n_in), scale=1.0)), Input(d.array((n_out, n_in), scale=1.0))
    bias = d.choice(["none", "full", "full", "one"])
    if bias == "none":
        return Case(lambda a, b: ops.linear(a, b), F.linear, [x, w])
    b = Input(d.array((n_out,) if bias == "full" else (1,), scale=1.0))
    return Case(ops.linear, F.linear, [x, w, b])


def make_embedding(d):
    V, C = int(d.rng.integers(1, 6)), int(d.rng.integers(1, 4))
    ids = d.rng.integers(0, V, d.shape(most_dims=2))
    return Case(lambda w: ops.embedding(w, ids), lambda w: F.embedding(torch.as_tensor(ids), w),
                [Input(d.array((V, C)))])


def make_cumsum(d):
    x = d.array(d.shape())
    axis = 0 if x.ndim == 0 else int(d.rng.integers(-x.ndim, x.ndim))
    return Case(lambda t: ops.cumsum(t, axis=axis), lambda t: torch.cumsum(t, dim=axis), [Input(x)])


def softmaxes(ours_op, torch_op):
    def make(d):
        shape = (3, 0) if d.chance(0.03) else d.shape()
        return Case(ours_op, lambda t: torch_op(t, dim=-1),
                    [Input(d.array(shape, scale=d.choice([1.0, 1.0, 1e3, 1e-20])))])
    return make


def make_layer_norm(d):
    # C >= 3: with C = 1 or 2, x_hat is 0 or +-1 up to eps, so dx is a difference of nearly equal
    # terms (exactly 0 for C = 1), and both answers are rounding noise, rounded differently;
    # test_op_semantics checks those widths by finite differences instead.
    lead, C = d.shape(most_dims=2), int(d.rng.integers(3, 7))
    x, w, b = d.array((*lead, C), scale=d.choice([1.0, 1.0, 1e3])), d.array((C,), scale=1.0), d.array((C,), scale=1.0)
    return Case(ops.layer_norm, lambda t, tw, tb: F.layer_norm(t, (C,), tw, tb, eps=1e-5),
                [Input(x), Input(w, d.choice(["leaf", "const"])), Input(b)])


def make_attention(d):
    B, T, H, D = (int(d.rng.integers(1, 4)) for _ in range(4))
    causal = d.chance(0.5)

    def theirs(q, k, v):
        heads = [t.reshape(B, T, H, D).transpose(1, 2) for t in (q, k, v)]
        return F.scaled_dot_product_attention(*heads, is_causal=causal).transpose(1, 2).reshape(B, T, H * D)
    return Case(lambda q, k, v: ops.attention(q, k, v, H, causal=causal), theirs,
                [Input(d.array((B, T, H * D), scale=1.0)) for _ in range(3)])


def make_where(d):
    (sa, sb), sc = d.broadcast_pair(), d.shape(most_dims=1, sizes=(1,))
    cond = d.rng.random(np.broadcast_shapes(sa, sb, sc)) < 0.5
    a, b = Input(d.array(sa)), other_operand(d, sb)
    torch_b = (lambda v: v) if not isinstance(b.value, np.generic) else (lambda v: v)
    return Case(lambda x, y: ops.where(cond, x, y), lambda x, y: torch.where(torch.as_tensor(cond), x, torch_b(y)),
                [a, b])


def make_masked_fill(d):
    x = d.array(d.shape())
    mask_shape = tuple(1 if d.chance(0.4) else n for n in x.shape)[int(d.rng.integers(0, x.ndim + 1)):]
    mask, value = d.rng.random(mask_shape) < 0.5, float(d.choice([0.0, -1e9, 2.5]))
    return Case(lambda t: ops.masked_fill(t, mask, value), lambda t: t.masked_fill(torch.as_tensor(mask), value),
                [Input(x)])


def make_dropout(d):
    x = d.array(d.shape())
    p, training = d.choice([0.0, 1.0, 0.5]), d.chance(0.7)
    if p == 0.5 and training:  # random masks: compare the structure, y = x m / (1 - p), dy/dx = m / (1 - p)
        return Case(lambda t: ops.dropout(t, p, True), None, [Input(x)], tags=["dropout"])
    # in evaluation (and for p = 0) both return the input itself
    return Case(lambda t: ops.dropout(t, p, training), lambda t: F.dropout(t, p, training), [Input(x)], view=True)


def make_cross_entropy(d):
    lead = d.choice([(), (int(d.rng.integers(1, 5)),), (2, int(d.rng.integers(1, 4)))])
    V = int(d.rng.integers(1, 6))
    logits = d.array((*lead, V), scale=d.choice([1.0, 1.0, 1e3]))
    targets = d.rng.integers(0, V, lead)
    ignore = d.choice([None, None, -100, 0])
    if ignore is not None and targets.size > 1:
        targets.reshape(-1)[1:][d.rng.random(targets.size - 1) < 0.3] = ignore
    if ignore is not None and (targets == ignore).all():
        ignore = None if ignore == -100 else ignore - 1  # PyTorch gives NaN when every row is ignored, minisum 0
    ignore_torch = -100 if ignore is None else ignore
    return Case(lambda z: ops.cross_entropy(z, targets, ignore_index=ignore),
                lambda z: F.cross_entropy(z.reshape(-1, V), torch.as_tensor(targets).reshape(-1),
                                          ignore_index=ignore_torch), [Input(logits)])


def make_linear_cross_entropy(d):
    lead, C, V = d.choice([(3,), (2, 3), (1,)]), int(d.rng.integers(1, 4)), int(d.rng.integers(2, 6))
    targets = d.rng.integers(0, V, lead)
    if lead[-1] > 1:
        targets.reshape(-1)[-1] = -100
    with_bias, chunk = d.chance(0.7), d.choice([None, 1, 2])
    inputs = [Input(d.array((*lead, C), scale=1.0), d.choice(["leaf", "const"])), Input(d.array((V, C), scale=1.0))]
    if with_bias:
        inputs.append(Input(d.array((V,), scale=1.0), d.choice(["leaf", "const"])))

    def ours(x, w, b=None):
        return ops.linear_cross_entropy(x, w, b, targets, ignore_index=-100, chunk_rows=chunk)

    def theirs(x, w, b=None):
        logits = F.linear(x, w, b).reshape(-1, V)
        y = torch.as_tensor(targets).reshape(-1)
        hits = ((logits.argmax(-1) == y) & (y != -100)).sum()
        return F.cross_entropy(logits, y, ignore_index=-100), hits
    return Case(ours, theirs, inputs, once=True)


def make_bce(d):
    shape = d.shape()
    z, t = d.array(shape, scale=d.choice([1.0, 1.0, 1e3])), d.rng.uniform(0, 1, shape).astype(d.dtype)
    return Case(ops.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits,
                [Input(z), Input(t, d.choice(["leaf", "const"]))])


def make_mse(d):
    sa, sb = d.broadcast_pair()
    return Case(ops.mse_loss, F.mse_loss, [Input(d.array(sa)), Input(d.array(sb), d.choice(["leaf", "const"]))])


def make_compare(d):
    sa, sb = d.broadcast_pair()
    symbol = d.choice(["<", "<=", ">", ">="])
    compare = {"<": lambda x, y: x < y, "<=": lambda x, y: x <= y, ">": lambda x, y: x > y, ">=": lambda x, y: x >= y}
    return Case(compare[symbol], compare[symbol], [Input(d.array(sa), "const"), Input(d.array(sb), "const")],
                grads=False)


OPS = {
    "add": binary(ops.add, torch.add, lambda x, y: x + y),
    "sub": binary(ops.sub, torch.sub, lambda x, y: x - y),
    "mul": binary(ops.mul, torch.mul, lambda x, y: x * y),
    "div": binary(ops.div, torch.div, lambda x, y: x / y, kind_b="positive"),
    "neg": unary(lambda t: -t, torch.neg, scales=(1.0, 1e20)),
    "pow": make_pow,
    "pow (tensor exponent)": make_pow_tensor,
    "abs": make_abs,
    "exp": unary(ops.exp, torch.exp, scales=(1.0, 1.0, 100.0)),
    "log": unary(lambda t: t.log(), torch.log, kind="positive", scales=(1.0, 1e-20, 1e20)),
    "tanh": unary(ops.tanh, torch.tanh, scales=(1.0, 1.0, 1e3)),
    "sigmoid": unary(lambda t: t.sigmoid(), torch.sigmoid, scales=(1.0, 1.0, 10.0, 1e3)),
    "relu": make_relu,
    "sum": reduction("sum", "sum"),
    "mean": reduction("mean", "mean"),
    "max": reduction("max", "amax"),
    "reshape": make_reshape,
    "transpose": make_transpose,
    "getitem": make_getitem,
    "concat": make_concat,
    "matmul": make_matmul,
    "linear": make_linear,
    "embedding": make_embedding,
    "cumsum": make_cumsum,
    "softmax": softmaxes(ops.softmax, torch.softmax),
    "log_softmax": softmaxes(ops.log_softmax, torch.log_softmax),
    "layer_norm": make_layer_norm,
    "attention": make_attention,
    "where": make_where,
    "masked_fill": make_masked_fill,
    "dropout": make_dropout,
    "cross_entropy": make_cross_entropy,
    "linear_cross_entropy": make_linear_cross_entropy,
    "binary_cross_entropy_with_logits": make_bce,
    "mse_loss": make_mse,
    "comparisons": make_compare,
}


# ----- running a case ----------------------------------------------------------------------
def relative_error(ours, theirs, dtype, upstream=None):
    """The worst error of `ours` against `theirs` (see TOLERANCE), inf where NaNs or infinities differ."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        return np.inf
    if not np.array_equal(np.isnan(ours), np.isnan(theirs)) or not np.array_equal(ours[np.isinf(ours)],
                                                                                  theirs[np.isinf(ours)]):
        return np.inf
    finite = np.isfinite(theirs)
    if not finite.any():
        return 0.0
    a, b = ours[finite], theirs[finite]
    scale = max(float(np.abs(b).max()), float(np.abs(upstream).max()) if upstream is not None and upstream.size else 0)
    floor = max(FLOOR[dtype.type] * scale, np.finfo(dtype).tiny)
    errors = np.abs(a - b) / np.maximum(np.abs(b), floor)
    errors[np.maximum(np.abs(a), np.abs(b)) < np.finfo(dtype).tiny] = 0.0
    return float(errors.max())


def to_torch(inp):
    if inp.kind == "raw":
        v = inp.value
        if isinstance(v, np.generic):
            return v.item()
        return torch.as_tensor(np.array(v)) if isinstance(v, np.ndarray) else v
    t = torch.tensor(np.array(inp.value))
    return t.requires_grad_(inp.kind == "leaf")


def to_ours(inp):
    if inp.kind == "raw":
        return inp.value
    return Tensor(inp.value, requires_grad=inp.kind == "leaf")  # shares: the views reach the ops as they are


def run_case(name, case, d, stats):
    """Compare one case; return the list of what went wrong (empty when it agrees)."""
    problems = []
    saved = [np.array(i.value, copy=True) if isinstance(i.value, np.ndarray) else None for i in case.inputs]
    ours_in = [to_ours(i) for i in case.inputs]
    leaves = [t for t, i in zip(ours_in, case.inputs) if i.kind == "leaf"]
    caller_arrays = [i.value for i in case.inputs if isinstance(i.value, np.ndarray)]
    dtype, tol = d.dtype, TOLERANCE[d.dtype.type]

    def record(stage, err, what):
        key = (name, dtype.name, stage)
        stats[key] = max(stats.get(key, 0.0), err)
        if not err <= tol:
            problems.append(f"{what}: error {err:.2e} > {tol:.0e}")

    no_grad_run = d.chance(0.05) and "dropout" not in case.tags
    with no_grad() if no_grad_run else contextlib.nullcontext():
        out = case.ours(*ours_in)
    hits = None
    if isinstance(out, tuple):
        out, hits = out
    if "dropout" in case.tags:
        return check_dropout(out, ours_in[0], d, problems)

    their_in = [to_torch(i) for i in case.inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mse_loss's broadcasting warning
        with torch.no_grad() if no_grad_run else contextlib.nullcontext():
            theirs = case.theirs(*their_in)
    their_hits = None
    if isinstance(theirs, tuple):
        theirs, their_hits = theirs
    if hits is not None and int(hits) != int(their_hits):
        problems.append(f"hits {int(hits)} != {int(their_hits)}")
    if out.shape != tuple(theirs.shape) or TORCH_DTYPE.get(out.dtype) != theirs.dtype:
        problems.append(f"output {out.dtype}{out.shape} != torch {theirs.dtype}{tuple(theirs.shape)}")
        return problems
    if out.dtype.kind == "f":
        record("forward", relative_error(out.data, theirs.detach().numpy(), out.dtype), "forward")
    elif not np.array_equal(out.data, theirs.numpy()):
        problems.append("forward values differ")
    if not case.view and any(np.shares_memory(out.data, a) for a in caller_arrays):
        problems.append("the output shares memory with an input")
    if no_grad_run:
        if (out.requires_grad or out.creator is not None) and not any(out is t for t in ours_in):
            problems.append("no_grad recorded a graph")
        return problems

    if case.grads and theirs.requires_grad:
        if not out.requires_grad:
            return problems + ["ours does not require grad where torch does"]
        upstream = d.rng.standard_normal(out.shape).astype(out.dtype)
        repeat = d.chance(0.1)
        out.backward(upstream, free_graph=not repeat and d.chance(0.1))
        theirs.backward(torch.as_tensor(upstream), retain_graph=repeat)
        if repeat and case.once:
            try:
                out.backward(upstream)
                problems.append("a second backward of a one-backward op was taken")
            except RuntimeError:
                pass
        elif repeat:  # a second walk adds the same gradients again
            out.backward(upstream)
            theirs.backward(torch.as_tensor(upstream))
        elif out.creator is not None and out.creator.released:
            try:
                out.backward(upstream)
                problems.append("a released graph took a second backward")
            except RuntimeError:
                pass
        torch_leaves = [t for t, i in zip(their_in, case.inputs) if i.kind == "leaf"]
        for k, (ours_leaf, their_leaf) in enumerate(zip(leaves, torch_leaves)):
            g, tg = ours_leaf.grad, their_leaf.grad
            if tg is None or g is None:
                if (tg is None) != (g is None) and not (tg is None and not np.any(g)):
                    problems.append(f"gradient {k}: ours {g is None and 'None' or 'set'}, torch {tg}")
                continue
            if g.shape != ours_leaf.shape or g.dtype != ours_leaf.dtype or not isinstance(g, np.ndarray):
                problems.append(f"gradient {k} is {type(g).__name__} {g.dtype}{g.shape} for {ours_leaf.dtype}{ours_leaf.shape}")
                continue
            record("backward", relative_error(g, tg.numpy(), g.dtype, upstream), f"gradient {k}")
            if any(np.shares_memory(g, a) for a in caller_arrays):
                problems.append(f"gradient {k} shares memory with an input")
    for inp, before in zip(case.inputs, saved):
        if before is not None and not np.array_equal(inp.value, before, equal_nan=True):
            problems.append("an input was written into")
    return problems


def check_dropout(out, x, d, problems):
    kept = out.data != 0
    np.testing.assert_allclose(out.data[kept], x.data[kept] / 0.5, rtol=1e-6)
    upstream = d.rng.standard_normal(out.shape).astype(out.dtype)
    out.backward(upstream)
    if not np.allclose(x.grad, upstream * kept / 0.5, rtol=1e-6):
        problems.append("dropout's gradient is not dy * mask / (1 - p)")
    return problems


def run_op(name, seed, stats, cases=CASES_PER_OP):
    failures = []
    for i in range(cases):
        dtype = (np.float32, np.float64)[i % 2]
        d = Draw(np.random.default_rng([seed, i, sum(map(ord, name))]), dtype)
        case = OPS[name](d)
        try:
            problems = run_case(name, case, d, stats)
        except Exception as err:  # one side raised where the other answered
            problems = [f"raised {type(err).__name__}: {err}"]
        if problems:
            failures.append(f"{name} case {i} ({np.dtype(dtype).name}, seed {seed}): {'; '.join(problems)}")
    return failures


@pytest.fixture(autouse=True)
def _on_the_cpu():
    """The cases compare NumPy arrays, views and memory with PyTorch's CPU tensors; on a GPU
    suite test_op_semantics.py checks the gradients on the device instead."""
    if minisum.get_device() != "cpu":
        pytest.skip("the differential test runs on the CPU (it compares NumPy arrays with PyTorch's)")


@pytest.mark.parametrize("name", list(OPS))
def test_agrees_with_pytorch(name):
    failures = run_op(name, SEED, {})
    assert not failures, f"{len(failures)} of {CASES_PER_OP} cases differ:\n" + "\n".join(failures[:5])


# ----- bad input: both sides refuse it --------------------------------------------------------
def _backward_of_no_grad(make):
    return lambda: make().sum().backward()


REFUSED = {
    "int mask in where": (lambda: ops.where(np.array([1, 0]), Tensor(np.ones(2)), Tensor(np.ones(2))),
                          lambda: torch.where(torch.tensor([1, 0]), torch.ones(2), torch.ones(2))),
    "target -1": (lambda: ops.cross_entropy(Tensor(np.ones((1, 3))), np.array([-1])),
                  lambda: F.cross_entropy(torch.ones(1, 3), torch.tensor([-1]))),
    "target V": (lambda: ops.cross_entropy(Tensor(np.ones((1, 3))), np.array([3])),
                 lambda: F.cross_entropy(torch.ones(1, 3), torch.tensor([3]))),
    "targets of another shape": (lambda: ops.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 1, 2])),
                                 lambda: F.cross_entropy(torch.ones(2, 3), torch.tensor([0, 1, 2]))),
    "bce targets of another shape": (
        lambda: ops.binary_cross_entropy_with_logits(Tensor(np.ones(4)), Tensor(np.ones((3, 4)))),
        lambda: F.binary_cross_entropy_with_logits(torch.ones(4), torch.ones(3, 4))),
    "layer_norm weight (1,)": (lambda: ops.layer_norm(Tensor(np.ones((2, 3))), Tensor(np.ones(1)), Tensor(np.ones(3))),
                               lambda: F.layer_norm(torch.ones(2, 3), (3,), torch.ones(1), torch.ones(3))),
    "sum axis 2 of 2-d": (lambda: ops.sum(Tensor(np.ones((2, 3))), axis=2), lambda: torch.ones(2, 3).sum(dim=2)),
    "mean axis -3 of 2-d": (lambda: ops.mean(Tensor(np.ones((2, 3))), axis=-3), lambda: torch.ones(2, 3).mean(dim=-3)),
    "max of an empty axis": (lambda: ops.max(Tensor(np.ones((3, 0))), axis=1), lambda: torch.ones(3, 0).amax(dim=1)),
    "cumsum axis 2 of 2-d": (lambda: ops.cumsum(Tensor(np.ones((2, 3))), axis=2), lambda: torch.ones(2, 3).cumsum(2)),
    "matmul inner sizes": (lambda: ops.matmul(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 2)))),
                           lambda: torch.ones(2, 3) @ torch.ones(4, 2)),
    "add shapes": (lambda: Tensor(np.ones(2)) + Tensor(np.ones(3)), lambda: torch.ones(2) + torch.ones(3)),
    "integer requires grad": (lambda: minisum.tensor([1, 2], requires_grad=True),
                              lambda: torch.tensor([1, 2], requires_grad=True)),
    "backward without grad": (_backward_of_no_grad(lambda: Tensor(np.ones(2)) * 2.0),
                              _backward_of_no_grad(lambda: torch.ones(2) * 2.0)),
    "backward of a non-scalar": (lambda: (Tensor(np.ones(2), requires_grad=True) * 2.0).backward(),
                                 lambda: (torch.ones(2, requires_grad=True) * 2.0).backward()),
    "dropout p 1.5": (lambda: ops.dropout(Tensor(np.ones(2)), 1.5, True), lambda: F.dropout(torch.ones(2), 1.5, True)),
    "dropout p -0.5": (lambda: ops.dropout(Tensor(np.ones(2)), -0.5, True), lambda: F.dropout(torch.ones(2), -0.5, True)),
    "bool of two values": (lambda: bool(Tensor(np.ones(2)) > 0), lambda: bool(torch.ones(2) > 0)),
    "embedding id V": (lambda: ops.embedding(Tensor(np.ones((3, 2))), np.array([3])),
                       lambda: F.embedding(torch.tensor([3]), torch.ones(3, 2))),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_both_refuse(name):
    ours, theirs = REFUSED[name]
    with pytest.raises(Exception):
        theirs()
    with pytest.raises(Exception):
        ours()


def table(seeds):
    """The worst error per op, dtype and stage over `seeds`, and every failure."""
    stats, failures = {}, []
    for seed in seeds:
        for name in OPS:
            failures += run_op(name, seed, stats)
    print(f"{len(OPS) * CASES_PER_OP} cases per seed, seeds {seeds}; {len(failures)} mismatches")
    print("| op | cases | float32 forward | float32 backward | float64 forward | float64 backward |")
    print("|---|---|---|---|---|---|")
    for name in OPS:
        cells = [stats.get((name, dt, stage)) for dt in ("float32", "float64") for stage in ("forward", "backward")]
        print(f"| {name} | {CASES_PER_OP * len(seeds)} | " + " | ".join("-" if c is None else f"{c:.1e}" for c in cells) + " |")
    for failure in failures[:20]:
        print(failure)


if __name__ == "__main__":
    warnings.simplefilter("ignore", RuntimeWarning)  # overflow to inf at extreme magnitudes, as in torch
    table([int(s) for s in sys.argv[1:]] or [SEED])
