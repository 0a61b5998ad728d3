"""The NumPy-only counterpart of test_differential.py, which CI runs without PyTorch: every op's
gradient checked by central differences in float64 on random shapes (broadcasting from both
sides, 0-d values, size-1 axes, views that are not contiguous), and the dtype rules.

Seeded by conftest's TEST_SEED (MINISUM_TEST_SEED), so a grading seed draws other shapes.
"""
import numpy as np
import pytest

from minisum import Tensor, gradcheck, ops
from minisum.autograd import result_dtype
from conftest import TEST_SEED, on_device

pytestmark = pytest.mark.needs_engine  # every op's forward and backward, walked by the engine
CASES_PER_OP = 25


class Draw:
    def __init__(self, name, case):
        self.rng = np.random.default_rng([TEST_SEED, case, sum(map(ord, name))])

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def shape(self, most_dims=3):
        return tuple(int(self.rng.integers(1, 4)) for _ in range(int(self.rng.integers(0, most_dims + 1))))

    def broadcast_pair(self):
        base = tuple(int(self.rng.integers(2, 4)) for _ in range(int(self.rng.integers(0, 4))))
        pair = []
        for _ in range(2):
            s = [1 if self.rng.random() < 0.35 else n for n in base]
            pair.append(tuple(s[int(self.rng.integers(0, len(s) + 1)):] if self.rng.random() < 0.4 else s))
        return pair

    def leaf(self, shape, kind="normal", requires_grad=True):
        """A float64 tensor of `shape`: normal, positive (0.5 to 2) or away from 0 (|x| >= 0.2),
        sometimes a reversed or transposed view rather than a contiguous array."""
        if kind == "positive":
            a = self.rng.uniform(0.5, 2.0, shape)
        else:
            a = self.rng.standard_normal(shape)
            if kind == "away":
                a = np.where(a >= 0, 1.0, -1.0) * (0.2 + np.abs(a))
        a = on_device(a)
        if a.ndim and self.rng.random() < 0.3:
            a = a[::-1].copy()[::-1] if self.rng.random() < 0.5 else a.T.copy().T
        return Tensor(a, requires_grad=requires_grad)

    def axis(self, ndim):
        if ndim == 0:
            return self.choice([None, 0, -1])
        options = [None, int(self.rng.integers(-ndim, ndim)), np.int64(self.rng.integers(0, ndim))]
        if ndim > 1:
            options.append(tuple(sorted(self.rng.choice(ndim, size=2, replace=False).tolist())))
        return self.choice(options)


def binary(op, kind_b="normal"):
    def make(d):
        sa, sb = d.broadcast_pair()
        return op, [d.leaf(sa), d.leaf(sb, kind_b)]
    return make


def unary(op, kind="normal"):
    return lambda d: (op, [d.leaf(d.shape(), kind)])


def make_pow(d):
    p = d.choice([0, 1, 2, 3, -1, 0.5, 2.5, np.int64(2)])
    integer = float(p) == int(p)
    return (lambda x: x ** p), [d.leaf(d.shape(), "away" if p == -1 else "normal" if integer else "positive")]


def make_pow_tensor(d):
    sa, sb = d.broadcast_pair()
    if d.rng.random() < 0.3:
        return (lambda e: 2.0 ** e), [d.leaf(sb)]
    return (lambda a, e: a ** e), [d.leaf(sa, "positive"), d.leaf(sb)]


def reduction(name):
    def make(d):
        x = d.leaf(d.shape(), "normal")
        axis, keepdims = d.axis(x.ndim), bool(d.rng.random() < 0.5)
        return (lambda t: getattr(ops, name)(t, axis=axis, keepdims=keepdims)), [x]
    return make


def make_reshape(d):
    x = d.leaf(d.shape())
    if d.rng.random() < 0.5:
        return (lambda t: t.reshape(-1)), [x]
    return (lambda t: t.reshape(1, *t.shape, 1)), [x]


def make_transpose(d):
    x = d.leaf(d.shape())
    perm = [int(a) for a in d.rng.permutation(x.ndim)]
    return (lambda t: ops.transpose(t, perm) if perm else t.T), [x]


def make_getitem(d):
    x = d.leaf(d.shape() or (3,))
    index = d.choice([(slice(1, None), ...), d.rng.integers(0, x.shape[0], 4), d.rng.random(x.shape) < 0.5, -1])
    return (lambda t: t[index]), [x]


def make_concat(d):
    shape = d.shape() or (2,)
    axis = int(d.rng.integers(-len(shape), len(shape)))
    parts = []
    for _ in range(int(d.rng.integers(1, 4))):
        s = list(shape)
        s[axis] = int(d.rng.integers(1, 3))
        parts.append(d.leaf(tuple(s)))
    return (lambda *ts: ops.concat(list(ts), axis=axis)), parts


def make_matmul(d):
    n, k, m = (int(d.rng.integers(1, 4)) for _ in range(3))
    a, b = d.choice([((k,), (k,)), ((k,), (k, m)), ((n, k), (k,)), ((n, k), (k, m)), ((2, 1, n, k), (2, k, m))])
    return (lambda x, y: x @ y), [d.leaf(a), d.leaf(b)]


def make_linear(d):
    lead, n_in, n_out = d.shape(2), int(d.rng.integers(1, 4)), int(d.rng.integers(1, 4))
    bias = d.choice([None, (n_out,), (1,)])
    inputs = [d.leaf((*lead, n_in)), d.leaf((n_out, n_in))] + ([d.leaf(bias)] if bias else [])
    return (lambda x, w, b=None: ops.linear(x, w, b)), inputs


def make_embedding(d):
    V = int(d.rng.integers(1, 5))
    ids = d.rng.integers(0, V, d.shape(2))
    return (lambda w: ops.embedding(w, ids)), [d.leaf((V, 2))]


def make_cumsum(d):
    x = d.leaf(d.shape())
    axis = 0 if x.ndim == 0 else int(d.rng.integers(-x.ndim, x.ndim))
    return (lambda t: ops.cumsum(t, axis=axis)), [x]


def make_layer_norm(d):
    C = int(d.rng.integers(1, 6))  # widths 1 and 2 too, whose gradient is (nearly) 0
    return ops.layer_norm, [d.leaf((*d.shape(2), C)), d.leaf((C,)), d.leaf((C,))]


def make_attention(d):
    B, T, H, D = (int(d.rng.integers(1, 3)) for _ in range(4))
    causal = bool(d.rng.random() < 0.5)
    return (lambda q, k, v: ops.attention(q, k, v, H, causal=causal)), [d.leaf((B, T, H * D)) for _ in range(3)]


def make_where(d):
    sa, sb = d.broadcast_pair()
    cond = d.rng.random(np.broadcast_shapes(sa, sb)) < 0.5
    return (lambda a, b: ops.where(cond, a, b)), [d.leaf(sa), d.leaf(sb)]


def make_masked_fill(d):
    x = d.leaf(d.shape())
    mask = d.rng.random(x.shape) < 0.5
    return (lambda t: ops.masked_fill(t, mask, 2.5)), [x]


def make_cross_entropy(d):
    lead, V = d.choice([(), (3,), (2, 2)]), int(d.rng.integers(1, 5))
    targets = d.rng.integers(0, V, lead)
    ignore = d.choice([None, -100])
    if ignore is not None and targets.size > 1:
        targets.reshape(-1)[0] = ignore
    return (lambda z: ops.cross_entropy(z, targets, ignore_index=ignore)), [d.leaf((*lead, V))]


def make_linear_cross_entropy(d):
    lead, C, V = d.choice([(3,), (2, 2)]), int(d.rng.integers(1, 4)), int(d.rng.integers(2, 5))
    targets = d.rng.integers(0, V, lead)
    chunk = d.choice([None, 1, 2])
    inputs = [d.leaf((*lead, C)), d.leaf((V, C))] + ([d.leaf((V,))] if d.rng.random() < 0.7 else [])
    return (lambda x, w, b=None: ops.linear_cross_entropy(x, w, b, targets, chunk_rows=chunk)[0]), inputs


def make_bce(d):
    shape = d.shape()
    targets = Tensor(on_device(d.rng.uniform(0, 1, shape)), requires_grad=True)
    return ops.binary_cross_entropy_with_logits, [d.leaf(shape), targets]


OPS = {
    "add": binary(ops.add), "sub": binary(ops.sub), "mul": binary(ops.mul), "div": binary(ops.div, "positive"),
    "neg": unary(ops.neg), "pow": make_pow, "pow (tensor exponent)": make_pow_tensor, "abs": unary(abs, "away"),
    "exp": unary(ops.exp), "log": unary(ops.log, "positive"), "tanh": unary(ops.tanh), "sigmoid": unary(ops.sigmoid),
    "relu": unary(ops.relu, "away"), "sum": reduction("sum"), "mean": reduction("mean"), "max": reduction("max"),
    "reshape": make_reshape, "transpose": make_transpose, "getitem": make_getitem, "concat": make_concat,
    "matmul": make_matmul, "linear": make_linear, "embedding": make_embedding, "cumsum": make_cumsum,
    "softmax": unary(ops.softmax), "log_softmax": unary(ops.log_softmax), "layer_norm": make_layer_norm,
    "attention": make_attention, "where": make_where, "masked_fill": make_masked_fill,
    "cross_entropy": make_cross_entropy, "linear_cross_entropy": make_linear_cross_entropy,
    "binary_cross_entropy_with_logits": make_bce, "mse_loss": binary(ops.mse_loss),
}


@pytest.mark.parametrize("name", list(OPS))
def test_gradients_by_central_differences(name):
    for case in range(CASES_PER_OP):
        fn, inputs = OPS[name](Draw(name, case))
        shapes = [t.shape for t in inputs]
        try:
            gradcheck(fn, *inputs, seed=case)
        except AssertionError as err:
            raise AssertionError(f"{name}, case {case}, inputs of shapes {shapes}: {err}") from None
        for t in inputs:  # each gradient an array of its leaf's shape and dtype, even for 0-d leaves
            assert t.grad is None or (type(t.grad) is type(t.data) and t.grad.shape == t.shape
                                      and t.grad.dtype == t.dtype), (name, case, t.shape)


# ----- the dtype rules ---------------------------------------------------------------------
F32, F64, I64 = np.ones(2, np.float32), np.ones(2), np.ones(2, np.int64)


@pytest.mark.parametrize("inputs, expected", [
    ((F32, 2), np.float32), ((F32, 2.5), np.float32), ((F32, np.int64(2)), np.float32),
    ((F32, np.float64(2.5)), np.float32), ((F32, np.array(2.0)), np.float32), ((F32, I64), np.float32),
    ((F32, F64), np.float64), ((I64, 0.5), np.float32), ((I64, 2), np.int64), ((I64, np.array(2.0)), np.float64),
    ((np.array(1.0, np.float32), np.array(2.0)), np.float64), ((np.array(True), 2), np.int64),
], ids=lambda v: "-" if isinstance(v, tuple) else None)
def test_result_dtype_follows_pytorch(inputs, expected):
    assert result_dtype([Tensor(inputs[0]), inputs[1]]) == expected


@pytest.mark.parametrize("make, expected", [
    (lambda: Tensor(I64) / 2, np.float32), (lambda: Tensor(I64) / Tensor(I64), np.float32),
    (lambda: ops.exp(Tensor(I64)), np.float32), (lambda: ops.sigmoid(Tensor(np.array([True]))), np.float32),
    (lambda: Tensor(I64) ** 0.5, np.float32), (lambda: Tensor(I64) ** 2, np.int64),
    (lambda: ops.sum(Tensor(F32) * np.int64(3)), np.float32), (lambda: ops.mean(Tensor(F64)), np.float64),
    (lambda: ops.masked_fill(Tensor(I64), np.array([True, False]), 2.5), np.int64),
    (lambda: ops.masked_fill(Tensor(F32), np.array([True, False]), -1e9), np.float32),
])
def test_integers_become_float32_where_the_answer_is_a_float(make, expected):
    assert make().dtype == expected


def test_a_promoted_input_gets_its_gradient_in_its_own_dtype():
    x, s = Tensor(F32.copy(), requires_grad=True), Tensor(np.array(2.0), requires_grad=True)
    y = (x * s + s).sum()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32 and s.grad.dtype == np.float64
    assert float(s.grad) == 4.0  # sum of x, plus one per entry of x
