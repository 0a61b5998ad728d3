"""Tests of Tensor and backward(): sum_to, graph walks, accumulation, no_grad, dtypes, error messages.

The backward() tests (task 1.1) build their graphs from reshape, transpose and concat only,
which belong to no task, so they grade the walk alone.
"""
import weakref

import numpy as np
import pytest

import minisum
from minisum import Tensor, no_grad, ops, tensor
from minisum.autograd import _topological_order
from minisum.ops.arithmetic import sum_to
from conftest import shape_id, task, task_marks


def leaf(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# ----- sum_to (task 1.2) -------------------------------------------------------------------
@task("1.2")
@pytest.mark.parametrize("shape,times", [  # how often each entry of `shape` is used in (2, 3, 4)
    ((2, 3, 4), 1),  # nothing to undo
    ((3, 4), 2),  # a prepended axis of 2
    ((4,), 6),
    ((3, 1), 8),  # prepended, then stretched from 1 to 4
    ((1, 4), 6),
    ((2, 1, 1), 12),
    ((), 24),  # a 0-d value
], ids=lambda v: shape_id(v) if isinstance(v, tuple) else None)
def test_sum_to_undoes_broadcasting(shape, times):
    result = sum_to(np.ones((2, 3, 4)), shape)
    assert result.shape == shape
    np.testing.assert_array_equal(result, np.full(shape, float(times)))


@task("1.2")
def test_sum_to_adds_the_right_entries():
    grad = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(sum_to(grad, (1, 3)), [[3.0, 5.0, 7.0]])
    np.testing.assert_array_equal(sum_to(grad, (2, 1)), [[3.0], [12.0]])


# ----- backward() (task 1.1) ---------------------------------------------------------------
def flat(x):
    return ops.reshape(x, -1)


@task("1.1")
def test_backward_of_a_scalar_needs_no_upstream_gradient():
    x = leaf([2.0])
    ops.reshape(x, ()).backward()
    np.testing.assert_array_equal(x.grad, [1.0])


@task("1.1")
def test_backward_twice_doubles_leaf_gradients():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = ops.concat([flat(x), flat(ops.transpose(x))])  # [x00, x01, x10, x11, x00, x10, x01, x11]
    g = 2.0 ** np.arange(8)
    y.backward(g)
    expected = np.array([[1 + 16, 2 + 64], [4 + 32, 8 + 128]])
    np.testing.assert_array_equal(x.grad, expected)
    y.backward(g)
    np.testing.assert_array_equal(x.grad, 2 * expected)


@task("1.1")
def test_free_graph_gives_the_same_gradients_and_lets_the_intermediates_go():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    g = 2.0 ** np.arange(8)

    def graph():
        h = ops.transpose(x)  # an intermediate that only the graph holds once this returns
        return ops.concat([flat(x), flat(h)]), weakref.ref(h)

    y, h_ref = graph()
    y.backward(g)
    kept = x.grad.copy()
    assert h_ref() is not None  # a graph kept for another backward keeps its arrays
    x.grad = None
    y, h_ref = graph()
    y.backward(g, free_graph=True)
    np.testing.assert_array_equal(x.grad, kept)
    assert h_ref() is None  # released as backward passed it
    with pytest.raises(RuntimeError, match="released"):
        y.backward(g)


@task("1.1")
def test_diamond_sums_both_paths_before_going_further_back():
    x = leaf([1.0, 2.0, 3.0, 4.0])
    h = ops.reshape(x, 2, 2)  # an intermediate used by a short path and a long one
    short = flat(h)
    long = flat(ops.transpose(ops.reshape(flat(ops.transpose(h)), 2, 2)))  # transposed twice: [h00, h01, h10, h11]
    y = ops.concat([short, long, flat(ops.transpose(h))])  # [x0, x1, x2, x3, x0, x1, x2, x3, x0, x2, x1, x3]
    g = 2.0 ** np.arange(12)
    y.backward(g)
    np.testing.assert_array_equal(x.grad, [1 + 16 + 256, 2 + 32 + 1024, 4 + 64 + 512, 8 + 128 + 2048])


@task("1.1")
def test_an_intermediate_used_twice_by_one_op_is_visited_once():
    x = leaf([1.0, 2.0])
    h = ops.reshape(x, 2)
    y = ops.concat([h, h])  # h's creator is reached twice before it is visited
    order = _topological_order(y)
    assert order[0] is y.creator and order.count(h.creator) == 1 and len(order) == 2
    y.backward(np.array([1.0, 2.0, 4.0, 8.0]))
    np.testing.assert_array_equal(x.grad, [5.0, 10.0])


@task("1.1")
def test_leaf_used_twice_by_one_op_gets_both_gradients():
    x = leaf([1.0, 2.0])
    ops.concat([x, x]).backward(np.array([1.0, 2.0, 4.0, 8.0]))
    np.testing.assert_array_equal(x.grad, [5.0, 10.0])


@task("1.1")
def test_a_10000_op_chain_backpropagates_without_recursion_error():
    x = leaf(np.arange(6.0))
    y, order = x, np.arange(6)
    for _ in range(3334):  # 10,002 ops: each round shuffles the six entries
        y = flat(ops.transpose(ops.reshape(y, 2, 3)))
        order = order.reshape(2, 3).T.reshape(-1)
    np.testing.assert_array_equal(y.data, order)  # y[i] = x[order[i]]
    g = 2.0 ** np.arange(6)
    y.backward(g)
    expected = np.zeros(6)
    expected[order] = g
    np.testing.assert_array_equal(x.grad, expected)


@task("1.1")
def test_gradient_stops_at_detach_and_at_tensors_that_need_none():
    x = leaf([1.0, 2.0])
    constant = Tensor(np.array([5.0]))
    y = ops.concat([x.detach(), x, constant])
    y.backward(np.array([1.0, 2.0, 4.0, 8.0, 16.0]))
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])
    assert constant.grad is None


@task("1.1")
def test_leaf_gradients_are_their_own_writable_arrays():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    g = np.array([1.0, 2.0, 4.0, 8.0])
    ops.concat([ops.reshape(a, 2), b]).backward(g)
    a.grad *= 10  # in place, as gradient clipping does
    np.testing.assert_array_equal(g, [1.0, 2.0, 4.0, 8.0])
    np.testing.assert_array_equal(b.grad, [4.0, 8.0])


def test_backward_on_a_leaf_sets_its_gradient():
    x = leaf([1.0, 2.0])
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


@pytest.mark.needs_engine
def test_operator_gradients_are_independent_arrays():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    assert a.grad is not b.grad
    a.grad *= 2  # would fail on a read-only broadcast view and would change b.grad if shared
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


# ----- no_grad, detach, item, numpy --------------------------------------------------------
def test_no_grad_builds_no_graph_and_restores_itself():
    x = leaf([1.0, 2.0])
    with no_grad():
        assert not minisum.is_grad_enabled()
        y = ops.concat([x * 2.0, x[[0]]])
    assert y.creator is None and not y.requires_grad
    assert minisum.is_grad_enabled()
    with pytest.raises(RuntimeError), no_grad():
        raise RuntimeError
    assert minisum.is_grad_enabled()
    assert (x * 2.0).creator is not None


def test_detach_shares_data_but_not_the_graph():
    y = leaf([1.0, 2.0])[[1, 0]]
    d = y.detach()
    assert d.data is y.data
    assert d.creator is None and not d.requires_grad


def test_item_and_numpy():
    t = tensor([[2.5]])
    assert t.item() == 2.5 and isinstance(t.item(), float)
    a = tensor([1.0, 2.0]).numpy()
    assert isinstance(a, np.ndarray)
    np.testing.assert_array_equal(a, [1.0, 2.0])


# ----- dtypes ------------------------------------------------------------------------------
def test_python_floats_become_float32_and_arrays_keep_their_dtype():
    assert tensor(1.5).dtype == np.float32
    assert tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(2.5).dtype == np.float32
    assert tensor(np.zeros(2)).dtype == np.float64
    assert tensor([1, 2]).dtype.kind == "i"
    assert tensor([1.0], dtype=np.float64).dtype == np.float64


MASK = np.array([[True, False, False, True]] * 3)
FLOAT32_OPS = {  # each builds one Function from float32 x (3, 4), w (5, 4), b (5,), c (4,)
    "x * 2.0": lambda x, w, b, c: x * 2.0,
    "2.0 * x": lambda x, w, b, c: 2.0 * x,
    "x + 1": lambda x, w, b, c: x + 1,
    "1 - x": lambda x, w, b, c: 1 - x,
    "x / 2": lambda x, w, b, c: x / 2,
    "2 / x": lambda x, w, b, c: 2 / x,
    "x ** 2": lambda x, w, b, c: x ** 2,
    "x ** 0.5": lambda x, w, b, c: x ** 0.5,
    "-x": lambda x, w, b, c: -x,
    "x * c": lambda x, w, b, c: x * c,
    "exp": lambda x, w, b, c: ops.exp(x),
    "log": lambda x, w, b, c: ops.log(x),
    "tanh": lambda x, w, b, c: ops.tanh(x),
    "sigmoid": lambda x, w, b, c: ops.sigmoid(x),
    "relu": lambda x, w, b, c: ops.relu(x),
    "sum": lambda x, w, b, c: ops.sum(x, axis=1),
    "mean": lambda x, w, b, c: ops.mean(x),
    "max": lambda x, w, b, c: ops.max(x, axis=0),
    "reshape": lambda x, w, b, c: ops.reshape(x, 12),
    "transpose": lambda x, w, b, c: ops.transpose(x),
    "getitem": lambda x, w, b, c: x[[0, 0, 2]],
    "concat": lambda x, w, b, c: ops.concat([x, x]),
    "matmul": lambda x, w, b, c: x @ ops.transpose(w),
    "linear": lambda x, w, b, c: ops.linear(x, w, b),
    "embedding": lambda x, w, b, c: ops.embedding(w, np.array([[0, 4, 4]])),
    "cumsum": lambda x, w, b, c: ops.cumsum(x, axis=0),
    "softmax": lambda x, w, b, c: ops.softmax(x),
    "log_softmax": lambda x, w, b, c: ops.log_softmax(x),
    "layer_norm": lambda x, w, b, c: ops.layer_norm(x, c, c),
    "attention": lambda x, w, b, c: ops.attention(x[None], x[None], x[None], n_heads=2, causal=True),
    "where": lambda x, w, b, c: ops.where(MASK, x, 0),
    "masked_fill": lambda x, w, b, c: ops.masked_fill(x, MASK, -1e9),
    "dropout": lambda x, w, b, c: ops.dropout(x, 0.5, training=True),
    "cross_entropy": lambda x, w, b, c: ops.cross_entropy(x, np.array([0, 3, 1]), ignore_index=3),
    "bce": lambda x, w, b, c: ops.binary_cross_entropy_with_logits(x, np.ones((3, 4))),  # float64 targets
    "mse": lambda x, w, b, c: ops.mse_loss(x, np.zeros((3, 4))),  # a float64 target
}


# Keeping float32 is part of each op's task: the backward is called directly, so a test runs only
# its op's code (and sum_to, task 1.2, for the broadcasting arithmetic).
FLOAT32_TASKS = {
    **dict.fromkeys(["x * 2.0", "2.0 * x", "x + 1", "1 - x", "x / 2", "2 / x", "x * c"], ("1.3", "1.2")),
    **dict.fromkeys(["x ** 2", "x ** 0.5", "-x"], ("1.3",)),
    **dict.fromkeys(["exp", "log", "tanh", "sigmoid", "relu"], ("1.4",)),
    **dict.fromkeys(["sum", "mean", "max"], ("1.5",)),
    "matmul": ("1.6", "1.2"), "linear": ("1.6",),
    **dict.fromkeys(["softmax", "log_softmax", "cross_entropy"], ("2.1",)),
    "layer_norm": ("2.2",), "embedding": ("3.1",), "getitem": ("3.1",), "cumsum": ("3.2",), "attention": ("4.1",),
}


def float32_marks(name):
    if name in FLOAT32_TASKS:
        return task_marks(*FLOAT32_TASKS[name])
    return [pytest.mark.needs_engine] if name in ("where", "masked_fill") else []  # their backward calls sum_to


@pytest.mark.parametrize("name", [pytest.param(name, marks=float32_marks(name)) for name in FLOAT32_OPS])
def test_float32_stays_float32_forward_and_backward(name, rng):
    x, w, b, c = (Tensor(rng.uniform(0.5, 2.0, shape).astype(np.float32), requires_grad=True)
                  for shape in [(3, 4), (5, 4), (5,), (4,)])
    out = FLOAT32_OPS[name](x, w, b, c)
    assert out.dtype == np.float32
    grads = out.creator.backward(np.ones(out.shape, dtype=np.float32))
    dtypes = [g.dtype for g in (grads if isinstance(grads, tuple) else (grads,)) if g is not None]
    assert dtypes and all(dtype == np.float32 for dtype in dtypes)


@pytest.mark.needs_engine
def test_float32_model_step_keeps_float32_gradients(rng):
    x = Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32), requires_grad=True)
    w = Tensor(np.ones(4, dtype=np.float32), requires_grad=True)
    h = ops.layer_norm(x * 2.0 + 1, w, w * 0) ** 2
    loss = ops.cross_entropy(h, np.array([[0, 1, 2], [3, 0, 1]])) + ops.mean(h) / 10
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


# ----- error messages ----------------------------------------------------------------------
def names_shapes(message, *shapes):
    """True when every shape appears in the message, however NumPy spaces it."""
    compact = message.replace(" ", "")
    return all(str(tuple(s)).replace(" ", "") in compact for s in shapes)


def test_elementwise_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError) as err:
        ops.add(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5))))
    assert names_shapes(str(err.value), (2, 3), (4, 5))


@pytest.mark.parametrize("shape_a,shape_b", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3), (4,)), ((4,), (3, 2)),
                                             ((2, 3, 4), (5, 4, 6))], ids=shape_id)
def test_matmul_shape_mismatch_names_both_shapes(shape_a, shape_b):
    with pytest.raises(ValueError) as err:
        ops.matmul(Tensor(np.ones(shape_a)), Tensor(np.ones(shape_b)))
    assert names_shapes(str(err.value), shape_a, shape_b)


def test_linear_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError) as err:
        ops.linear(Tensor(np.ones((2, 3))), Tensor(np.ones((5, 4))))
    assert names_shapes(str(err.value), (2, 3), (5, 4))


def test_backward_on_a_non_scalar_asks_for_an_upstream_gradient():
    y = leaf([1.0, 2.0])[[0, 1]]
    with pytest.raises(ValueError, match=r"non-scalar.*\(2,\).*upstream gradient"):
        y.backward()


def test_backward_with_a_gradient_of_the_wrong_shape_names_both_shapes():
    y = leaf([1.0, 2.0])[[0, 1]]
    with pytest.raises(ValueError) as err:
        y.backward(np.ones(3))
    assert names_shapes(str(err.value), (3,), (2,))
