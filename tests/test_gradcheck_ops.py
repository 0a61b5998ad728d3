"""Gradient checks of every op: backward() against central differences, in float64.

`gradcheck` draws a random upstream gradient and applies it itself, so each check passes
the op directly: summing to a scalar first would run another task's code.
`@task(graded, *also)` (tests/conftest.py) names the assignment task a test grades and the
other tasks whose code it runs: 1.1, the walk of backward(), is under every gradient, and
1.2, sum_to, under every broadcasting op. A gradient check weighs 4, a test of forward values
alone 2, a float32 check (test_autograd.py) 1: a wrong gradient keeps at most a quarter of a
task's points. Where a task writes a forward too (3.2, 4.1), its checks also compare the
forward with a plain loop written here, so a backward that merely matches a wrong forward fails.
"""
import numpy as np
import pytest

import minisum
from minisum import Function, GradcheckError, Tensor, gradcheck, ops
from conftest import TEST_SEED, on_device, shape_id, task, to_host, vary

TOL = 1e-6


def check(fn, *inputs, expected=None):
    """Gradient check of `fn` at `inputs`; with `expected`, its forward must give those values too."""
    before = [t.data.copy() for t in inputs if isinstance(t, Tensor)]
    if expected is not None:
        np.testing.assert_allclose(to_host(fn(*inputs).data), expected, rtol=1e-10, atol=1e-10,
                                   err_msg="the forward's values are wrong")
    worst = gradcheck(fn, *inputs, tol=TOL, seed=TEST_SEED)  # the grader's seed changes the upstream gradient
    assert worst, "no input of the check requires grad"
    after = [t.data for t in inputs if isinstance(t, Tensor)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), "the op changed its inputs"


# ----- arithmetic --------------------------------------------------------------------------
BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),  # same shape
    ((3, 4), ()),  # 0-d tensor
    ((), (3, 4)),
    ((3, 4), (4,)),  # row with an axis prepended
    ((3, 4), (1, 4)),  # row
    ((3, 4), (3, 1)),  # column
    ((3, 1), (3, 4)),
    ((2, 3, 4), (3, 4)),  # leading axis
    ((4,), (2, 3, 4)),
    ((3, 1), (1, 4)),  # both stretched
    ((2, 1, 4), (3, 1)),  # both stretched, one with a leading axis
]


@task("1.3", "1.1", "1.2", weight=4)
@pytest.mark.parametrize("op", [ops.add, ops.sub, ops.mul, ops.div])
@pytest.mark.parametrize("shape_a,shape_b", BROADCAST_SHAPES, ids=shape_id)
def test_arithmetic_with_broadcasting(op, shape_a, shape_b, rand):
    check(op, rand(*shape_a), rand(*shape_b, positive=True))  # positive: a safe divisor


@task("1.3", "1.1", "1.2", weight=4)
@pytest.mark.parametrize("fn", [
    lambda x: x + 2.5, lambda x: 2.5 + x, lambda x: x - 1, lambda x: 3.0 - x,
    lambda x: x * -1.5, lambda x: 2 * x, lambda x: x / 4, lambda x: 2.0 / x,
], ids=["x+c", "c+x", "x-c", "c-x", "x*c", "c*x", "x/c", "c/x"])
def test_arithmetic_with_python_numbers(fn, rand):
    check(fn, rand(3, 4, positive=True))


@task("1.3", "1.1", weight=4)
def test_neg(rand):
    check(ops.neg, rand(3, 4))


@task("1.3", "1.1", weight=4)
@pytest.mark.parametrize("p", [2, 3, 0.5, -1.5, 1])
def test_pow(p, rand):
    check(lambda x: x ** p, rand(3, 4, positive=True))


@task("1.3", "1.1", weight=4)
def test_pow_of_negative_base_with_integer_exponent(rand):
    check(lambda x: x ** 3, rand(3, 4))


# ----- elementwise -------------------------------------------------------------------------
@task("1.4", "1.1", weight=4)
@pytest.mark.parametrize("op", [ops.exp, ops.tanh, ops.sigmoid])
def test_smooth_elementwise(op, rand):
    x = rand(3, 4)
    x.data[0, :2] = on_device([8.0, -8.0])  # saturated: still exact
    check(op, x)


@task("1.4", "1.1", weight=4)
def test_log_of_positive_inputs(rand):
    check(ops.log, rand(3, 4, positive=True))


@task("1.4", "1.1", weight=4)
def test_relu_away_from_its_kink(rand):
    x = rand(4, 5, away_from_zero=True)
    assert (x.data > 0).any() and (x.data < 0).any()
    check(ops.relu, x)


@task("1.4", "1.1", weight=4)
@pytest.mark.parametrize("op", [ops.exp, ops.log, ops.tanh, ops.sigmoid, ops.relu])
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 9)], ids=shape_id)
def test_elementwise_on_other_shapes(op, shape, rand):
    check(op, rand(*shape, positive=op is ops.log, away_from_zero=op is ops.relu))


# ----- reductions --------------------------------------------------------------------------
AXES = [None, 0, 1, -1, (0, 2), (2, 0, 1)]


@task("1.5", "1.1", weight=4)
@pytest.mark.parametrize("op", [ops.sum, ops.mean, ops.max])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(op, axis, keepdims, rand):
    check(lambda x: op(x, axis=axis, keepdims=keepdims), rand(2, 3, 4))  # no ties in normal draws


@task("1.5", "1.1", weight=4)
def test_max_splits_the_gradient_between_ties():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [5.0, 2.0, 0.0]]), requires_grad=True)
    ops.max(x, axis=1).backward(np.array([2.0, 1.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


# ----- shape ops ---------------------------------------------------------------------------
@pytest.mark.needs_engine
@pytest.mark.parametrize("shape", [(4, 6), (-1,), (2, 1, 12), (24,)], ids=shape_id)
def test_reshape(shape, rand):
    check(lambda x: ops.reshape(x, shape), rand(2, 3, 4))


@pytest.mark.needs_engine
@pytest.mark.parametrize("axes", [(), (1, 0, 2), (2, 0, 1), (-1, 0, 1)], ids=["reversed", "102", "201", "-101"])
def test_transpose(axes, rand):
    check(lambda x: ops.transpose(x, *axes), rand(2, 3, 4))


@pytest.mark.parametrize("index", [
    1, -1, slice(1, None), slice(None, None, -2), (slice(None), 2), (Ellipsis, slice(0, 3, 2)),
    [0, 0, 2, 0],  # repeated integer indices: their gradients add up
    (np.array([0, 1, 0, 0]), np.array([3, 2, 3, 3])),
    (slice(None), [1, 1, 1]),
    np.array([True, False, True]),
    (None, 1, slice(None)),
], ids=lambda index: repr(index).replace(" ", ""))
@task("3.1", "1.1", weight=4)  # indexing's backward is a scatter-add, as the embedding's
def test_getitem(index, rand):
    check(lambda x: ops.getitem(x, index), rand(3, 4))


@task("3.1", "1.1", weight=4)
def test_operator_indexing_with_repeated_rows(rand):
    check(lambda x: x[[2, 0, 2, 2]], rand(3, 4))


@pytest.mark.needs_engine
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis, rand):
    shapes = {0: [(1, 3), (2, 3), (3, 3)], 1: [(2, 1), (2, 2), (2, 4)], -1: [(2, 1), (2, 2), (2, 4)]}[axis]
    check(lambda *xs: ops.concat(xs, axis=axis), *(rand(*s) for s in shapes))


# ----- matmul and linear -------------------------------------------------------------------
@task("1.6", "1.1", "1.2", weight=4)
@pytest.mark.parametrize("shape_a,shape_b", [
    ((3, 4), (4, 5)),  # 2-D
    ((2, 3, 4), (2, 4, 5)),  # batched
    ((2, 1, 3, 4), (3, 4, 5)),  # broadcast batch on both sides
    ((3, 4), (2, 4, 5)),  # a matrix against a batch
    ((4,), (4, 5)),  # 1-D on the left
    ((3, 4), (4,)),  # 1-D on the right
    ((4,), (4,)),  # dot product
    ((4,), (2, 4, 5)),
    ((2, 3, 4), (4,)),
], ids=shape_id)
def test_matmul(shape_a, shape_b, rand):
    check(ops.matmul, rand(*shape_a), rand(*shape_b))


@task("1.6", "1.1", weight=4)
@pytest.mark.parametrize("x_shape", [(2, 3, 4), (3, 4), (4,)], ids=shape_id)
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear(x_shape, with_bias, rand):
    inputs = (rand(*x_shape), rand(5, 4)) + ((rand(5),) if with_bias else ())
    check(ops.linear, *inputs)


# ----- embedding and the causal summation --------------------------------------------------
@task("3.1", "1.1", weight=4)
def test_embedding_with_repeated_ids(rand, rng):
    V = vary(9)  # a larger vocabulary under a grading seed, its last row read twice
    ids = np.array([[0, 2, 2, 5, 0], [1, 2, 0, 0, 8]])  # rows 3, 4, 6 and 7 are never read
    ids = np.concatenate([ids, np.full((2, 1), V - 1), rng.integers(0, V, size=(2, V - 9))], axis=1)
    check(ops.embedding, rand(V, 3), ids)


@task("3.1", "1.1", weight=4)
def test_embedding_gradient_adds_up_the_uses_of_each_row(rand):
    weight = rand(8, 2)
    ids = np.array([[3, 1, 7], [3, 0, 1]])
    g = np.arange(12.0).reshape(2, 3, 2)
    ops.embedding(weight, on_device(ids)).backward(on_device(g.copy()))
    expected = np.zeros((8, 2))
    expected[0] = g[1, 1]
    expected[1] = g[0, 1] + g[1, 2]
    expected[3] = g[0, 0] + g[1, 0]
    expected[7] = g[0, 2]  # rows 2, 4, 5 and 6 are never read: zero
    np.testing.assert_array_equal(to_host(weight.grad), expected)


@task("3.1", "1.1", weight=4)
def test_embedding_gradient_of_a_large_vocabulary(rng):
    V, C = vary(50, most=1200), vary(8, most=70)  # V past 1,000 and C past 64 when graded
    weight = Tensor(on_device(rng.standard_normal((V, C))), requires_grad=True)
    ids = rng.integers(0, V, size=(3, vary(20, most=200)))
    g = rng.standard_normal(ids.shape + (C,))
    ops.embedding(weight, on_device(ids)).backward(on_device(g.copy()))
    expected = np.zeros((V, C))
    for position, row in np.ndenumerate(ids):  # one use at a time
        expected[row] += g[position]
    np.testing.assert_allclose(to_host(weight.grad), expected, rtol=1e-12, atol=1e-12)


@task("3.1", "1.1", weight=4)
def test_embedding_gradcheck_of_a_batch_of_one(rand):
    check(ops.embedding, rand(vary(7), 4), np.array([[6, 0, 6, 3]]))


def running_sum(x, axis):
    """s[.., t, ..] = x[.., 0, ..] + ... + x[.., t, ..], one position at a time."""
    x = np.moveaxis(np.asarray(x), axis, 0)
    s = np.zeros_like(x)
    total = np.zeros_like(x[0])
    for t in range(len(x)):
        total = total + x[t]
        s[t] = total
    return np.moveaxis(s, 0, axis)


@task("3.2", "1.1", weight=4)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_cumsum_on_each_axis(axis, rand):
    shape = [2, 3, 2]
    shape[axis] = vary(5, most=40)  # the summed axis up to 45 long under a grading seed
    x = rand(*shape)
    check(lambda x: ops.cumsum(x, axis=axis), x, expected=running_sum(to_host(x.data), axis))


@task("3.2", weight=2)
def test_cumsum_forward_of_known_values():
    x = Tensor(on_device(np.array([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]])))  # (1, 3, 2)
    np.testing.assert_array_equal(to_host(ops.cumsum(x, axis=1).data), [[[1, 10], [3, 30], [6, 60]]])
    np.testing.assert_array_equal(to_host(ops.cumsum(x, axis=2).data), [[[1, 11], [2, 22], [3, 33]]])


@task("3.2", weight=2)
def test_cumsum_forward_of_a_long_sequence_is_the_running_sum(rng):
    x = rng.standard_normal((2, vary(40, most=300), vary(8, most=70)))  # T past 300, C past 64 when graded
    np.testing.assert_allclose(to_host(ops.cumsum(Tensor(on_device(x)), axis=1).data), running_sum(x, 1),
                               rtol=1e-10, atol=1e-10)


@task("3.2", "1.1", weight=4)
def test_cumsum_backward_of_a_long_sequence_adds_the_later_gradients(rng):
    T = vary(40, most=300)
    x = Tensor(on_device(rng.standard_normal((2, T, 3))), requires_grad=True)
    g = rng.standard_normal((2, T, 3))
    ops.cumsum(x, axis=1).backward(on_device(g.copy()))
    expected = np.stack([g[:, u:].sum(axis=1) for u in range(T)], axis=1)  # dx_u = sum of ds_t for t >= u
    np.testing.assert_allclose(to_host(x.grad), expected, rtol=1e-10, atol=1e-10)


# ----- softmax, losses, layer norm, attention ----------------------------------------------
@task("2.1", "1.1", weight=4)
@pytest.mark.parametrize("op", [ops.softmax, ops.log_softmax])
def test_softmax_and_log_softmax(op, rand):
    check(op, rand(2, 3, vary(5)))


@task("2.1", "1.1", weight=4)
@pytest.mark.parametrize("ignore_index", [None, 0, -100])
def test_cross_entropy(ignore_index, rand, rng):
    V = vary(5)
    targets = rng.integers(0, V, size=(3, 4))
    targets[0, :2] = 0  # a real class id: ignored only when ignore_index is 0
    if ignore_index == -100:
        targets[2, 1:] = -100
    check(lambda z: ops.cross_entropy(z, targets, ignore_index=ignore_index), rand(3, 4, V))


@task("2.1", "1.1", weight=4)
def test_cross_entropy_of_uniform_logits_is_log_of_the_vocabulary():
    logits = Tensor(np.zeros((2, 3, 4)), requires_grad=True)
    targets = np.array([[0, 1, 2], [3, 7, 7]])
    loss = ops.cross_entropy(logits, targets, ignore_index=7)
    assert loss.item() == pytest.approx(np.log(4))
    loss.backward()
    assert not logits.grad[1, 1:].any()  # ignored rows get no gradient
    np.testing.assert_allclose(logits.grad[0, 0], np.array([-0.75, 0.25, 0.25, 0.25]) / 4)


@task("2.1", "1.1", weight=4)
def test_cross_entropy_with_every_target_ignored_is_zero_not_nan():
    logits = Tensor(np.ones((2, 3)), requires_grad=True)
    loss = ops.cross_entropy(logits, np.array([5, 5]), ignore_index=5)
    loss.backward()
    assert loss.item() == 0.0
    assert not logits.grad.any()


@task("2.2", "1.1", weight=4)
def test_layer_norm(rand):
    check(ops.layer_norm, rand(2, 3, 5), rand(5), rand(5))


@task("2.2", "1.1", weight=4)
def test_layer_norm_of_a_vector_with_large_eps(rand):
    check(lambda x, w, b: ops.layer_norm(x, w, b, eps=0.5), rand(6), rand(6), rand(6))


@task("2.2", "1.1", weight=4)
def test_layer_norm_of_wide_rows(rand):
    C = vary(9, most=70)  # past 64 features when graded
    check(ops.layer_norm, rand(3, C), rand(C), rand(C))


@task("2.2", "1.1", weight=4)
def test_layer_norm_with_two_batch_axes_and_one_feature_pair(rand):
    check(ops.layer_norm, rand(2, vary(3), 2), rand(2), rand(2))


@task("2.2", "1.1", weight=4)
def test_layer_norm_gradients_of_the_weight_and_bias_of_known_rows():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 7.0]])
    x_hat = np.array([[-1.0, 0.0, 1.0], [-1.0, -1.0, 2.0]]) / np.array([[np.sqrt(2 / 3)], [np.sqrt(2)]])
    w, b = (Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True) for _ in range(2))
    g = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    ops.layer_norm(Tensor(x), w, b, eps=0.0).backward(g.copy())
    np.testing.assert_allclose(to_host(w.grad), (g * x_hat).sum(axis=0), rtol=1e-10)  # dy times what w scaled
    np.testing.assert_allclose(to_host(b.grad), g.sum(axis=0), rtol=1e-10)  # b is added to every row


@task("2.2", "1.1", weight=2)
def test_layer_norm_input_gradient_of_each_row_sums_to_zero(rand, rng):
    # shifting a row by a constant leaves its output unchanged: the gradient has no component along (1, ..., 1)
    x = rand(4, vary(7, most=70))
    ops.layer_norm(x, rand(x.shape[1]), rand(x.shape[1])).backward(on_device(rng.standard_normal(x.shape)))
    np.testing.assert_allclose(to_host(x.grad).sum(axis=-1), 0, atol=1e-10)
    assert np.abs(to_host(x.grad)).max() > 1e-3


def attention_loop(q, k, v, n_heads, causal):
    """Attention one head and one query at a time: softmax over the keys each query may see."""
    B, T, HD = q.shape
    S, D = k.shape[1], HD // n_heads
    out = np.zeros_like(q)
    for b in range(B):
        for h in range(n_heads):
            cols = slice(h * D, (h + 1) * D)
            for t in range(T):
                seen = S - T + t + 1 if causal else S  # query t sits at position S - T + t of the keys
                scores = k[b, :seen, cols] @ q[b, t, cols] / np.sqrt(D)  # (seen,)
                weights = np.exp(scores - scores.max())
                out[b, t, cols] = (weights / weights.sum()) @ v[b, :seen, cols]
    return out


@task("4.1", "1.1", weight=2)
@pytest.mark.parametrize("n_queries,n_keys", [(4, 4), (2, 5)])  # fewer queries: keys from a cache
def test_attention(n_queries, n_keys, rand):
    T = vary(n_queries)  # longer sequences under a grading seed, as many cached keys
    S = T + n_keys - n_queries
    q, k, v = rand(2, T, 6), rand(2, S, 6), rand(2, S, 6)
    check(lambda q, k, v: ops.attention(q, k, v, n_heads=2), q, k, v,
          expected=attention_loop(*(to_host(a.data) for a in (q, k, v)), 2, causal=False))


@task("4.1", "1.1", weight=4)
@pytest.mark.parametrize("n_queries,n_keys,n_heads", [(4, 4, 2), (2, 5, 2), (5, 5, 1), (3, 3, 3)])
def test_causal_attention(n_queries, n_keys, n_heads, rand):
    T = vary(n_queries)
    S = T + n_keys - n_queries
    q, k, v = rand(2, T, 6), rand(2, S, 6), rand(2, S, 6)
    check(lambda q, k, v: ops.attention(q, k, v, n_heads=n_heads, causal=True), q, k, v,
          expected=attention_loop(*(to_host(a.data) for a in (q, k, v)), n_heads, causal=True))


@task("4.1", weight=2)
def test_causal_attention_of_a_long_sequence_matches_a_loop(rng):
    T, heads = vary(12, most=200), 2
    q, k, v = (rng.standard_normal((1, T, heads * vary(4, most=30))) for _ in range(3))
    out = ops.attention(*(Tensor(on_device(a)) for a in (q, k, v)), n_heads=heads, causal=True)
    np.testing.assert_allclose(to_host(out.data), attention_loop(q, k, v, heads, causal=True), rtol=1e-9, atol=1e-9)


@task("4.1", weight=2)
def test_causal_attention_never_looks_ahead(rng):
    q, k, v = (rng.standard_normal((2, 6, 4)) for _ in range(3))
    first = ops.attention(*(Tensor(on_device(a)) for a in (q, k, v)), n_heads=2, causal=True)
    k[:, 3:], v[:, 3:] = 100.0, -100.0  # change the future of positions 0-2
    second = ops.attention(*(Tensor(on_device(a)) for a in (q, k, v)), n_heads=2, causal=True)
    np.testing.assert_allclose(to_host(second.data)[:, :3], to_host(first.data)[:, :3], rtol=1e-12)
    np.testing.assert_allclose(to_host(first.data)[:, 0], v[:, 0], rtol=1e-12)  # the first query sees one key


# ----- ops that grade no task --------------------------------------------------------------
@pytest.mark.parametrize("cond_shape,a_shape,b_shape", [((3, 4), (3, 4), (3, 4)), ((3, 1), (3, 4), (4,)),
                                                        ((3, 4), (1, 4), ())], ids=shape_id)
@pytest.mark.needs_engine
def test_where(cond_shape, a_shape, b_shape, rand, rng):
    cond = on_device(rng.random(cond_shape) < 0.5)
    check(lambda a, b: ops.where(cond, a, b), rand(*a_shape), rand(*b_shape))


@pytest.mark.needs_engine
def test_masked_fill_passes_no_gradient_where_filled(rand):
    mask = on_device(np.triu(np.ones((4, 4), dtype=bool), k=1))
    x = rand(4, 4)
    check(lambda x: ops.masked_fill(x, mask, -4.0), x)
    assert not x.grad[mask].any() and x.grad[~mask].all()


@pytest.mark.needs_engine
def test_dropout_with_a_fixed_mask(rand):
    def dropped(x):
        minisum.seed(3)  # the same mask at every call
        return ops.dropout(x, 0.4, training=True)
    check(dropped, rand(5, 6))


@pytest.mark.needs_engine
def test_dropout_backward_is_the_mask_of_the_forward(rand, rng):
    x = rand(50, 40, away_from_zero=True)  # no zero input, so y == 0 exactly where dropped
    y = ops.dropout(x, 0.25, training=True)
    kept = to_host(y) != 0
    assert 0.2 < 1 - kept.mean() < 0.3
    np.testing.assert_allclose(to_host(y), to_host(x) * kept / 0.75)
    g = rng.standard_normal(y.shape)
    y.backward(on_device(g))
    np.testing.assert_allclose(to_host(x.grad), g * kept / 0.75)


def test_dropout_is_the_identity_in_evaluation_or_at_p_zero(rand):
    x = rand(3, 4)
    assert ops.dropout(x, 0.5, training=False) is x
    assert ops.dropout(x, 0.0, training=True) is x


@pytest.mark.needs_engine
@pytest.mark.parametrize("soft", [False, True])
def test_binary_cross_entropy_with_logits(soft, rand, rng):
    targets = on_device(rng.random((3, 4)) if soft else (rng.random((3, 4)) < 0.5).astype(np.float64))
    check(lambda z: ops.binary_cross_entropy_with_logits(z, targets), rand(3, 4))


def test_binary_cross_entropy_with_extreme_logits_stays_finite():
    loss = ops.binary_cross_entropy_with_logits(Tensor(on_device([-100.0, 100.0])), on_device([1.0, 0.0]))
    assert loss.item() == pytest.approx(100.0)  # -log sigmoid(-100) = 100 + log(1 + e^-100)


@pytest.mark.needs_engine
def test_mse_loss(rand):
    check(ops.mse_loss, rand(3, 4), rand(3, 4))


# ----- gradcheck itself --------------------------------------------------------------------
class ProductWithBrokenBackward(Function):
    """y = a * b, with the gradient of b wrong at one entry."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        gb = gy * self.a
        gb[1, 2] *= 1.01
        return gy * self.b, gb


class ProductIgnoringUpstream(Function):
    """y = a * b, with a backward that forgets to multiply by the upstream gradient."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return self.b.copy(), self.a.copy()


@pytest.mark.needs_engine
def test_gradcheck_names_the_input_and_index_of_a_wrong_gradient(rand):
    with pytest.raises(GradcheckError, match=r"input 1 .*at index \(1, 2\)"):
        gradcheck(lambda a, b: ProductWithBrokenBackward()(a, b), rand(3, 4), rand(3, 4))


@pytest.mark.needs_engine
def test_gradcheck_catches_a_backward_that_ignores_the_upstream_gradient(rand):
    # With an upstream gradient of ones this backward would be right.
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda a, b: ProductIgnoringUpstream()(a, b), rand(3, 4), rand(3, 4))


@pytest.mark.needs_engine
def test_gradcheck_passes_a_right_backward_and_reports_each_input(rand):
    worst = gradcheck(ops.mul, rand(3, 4), rand(3, 4))
    assert set(worst) == {0, 1} and max(worst.values()) < TOL


@pytest.mark.needs_engine
def test_gradcheck_refuses_outputs_too_large_for_finite_differences(rand):
    mask = on_device(np.triu(np.ones((4, 4), dtype=bool), k=1))
    with pytest.raises(GradcheckError, match="cannot be checked"):  # -1e9 swamps a change of 1e-6
        gradcheck(lambda x: ops.masked_fill(x, mask, -1e9), rand(4, 4))
