"""The reproducers of issue 22, one test each (numbered as in the issue), and the Function
contract that backward() checks (issue 20, item 7).

Each gives PyTorch's answer (the numbers in the comments are PyTorch 2.13's) or, where PyTorch
refuses, a one-line error that names the argument, its value and what is allowed. Tests that
only build a forward or expect an error before any backward run no task's code; the others
are marked with the tasks whose code they run (needs_engine where that is several ops' code).
"""
import subprocess
import sys

import numpy as np
import pytest

import minisum
from minisum import Function, Tensor, ops
from minisum.autograd import _topological_order
from minisum.models import LanguageModel
from minisum.nn import Linear
from minisum.nn.summation import positional_modulation
from minisum.optim import clip_grad_norm, clip_grad_value
from conftest import emulated_gpu, task


def leaf(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


# ----- 1. where / masked_fill with a non-boolean mask ----------------------------------------
@pytest.mark.parametrize("mask", [np.array([1, 0, 1]), np.array([1.0, 0.0, 1.0]), [1, 0, 1]],
                         ids=["int", "float", "list of ints"])
@pytest.mark.parametrize("op", ["where", "masked_fill"])
def test_01_a_mask_that_is_not_boolean_is_refused(op, mask):
    a, b = leaf([1.0, 1.0, 1.0]), leaf([2.0, 2.0, 2.0])
    with pytest.raises(TypeError, match=rf"{op}: the mask must be boolean, got an array of (int|float)64"):
        ops.where(mask, a, b) if op == "where" else ops.masked_fill(a, mask, 0.0)


@pytest.mark.needs_engine  # where's backward calls sum_to (1.2), through the engine (1.1)
def test_01_a_boolean_mask_splits_the_gradient():
    a, b = leaf([1.0, 1.0, 1.0]), leaf([1.0, 1.0, 1.0])
    ops.sum(ops.where(np.array([True, False, True]), a, b)).backward()
    np.testing.assert_array_equal(a.grad, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.0, 1.0, 0.0])
    x = leaf([1.0, 2.0, 3.0])
    ops.sum(ops.masked_fill(x, np.array([True, False, False]), 0.0)).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0])


# ----- 2. targets out of range ---------------------------------------------------------------
@pytest.mark.parametrize("target", [-1, -100, 3])
@pytest.mark.parametrize("op", ["cross_entropy", "linear_cross_entropy"])
def test_02_a_target_out_of_range_is_refused(op, target):
    targets = np.array([target])
    with pytest.raises(ValueError, match=rf"{op} targets must be class indices in \[0, 3\) .*got {target}$"):
        if op == "cross_entropy":
            ops.cross_entropy(Tensor(np.array([[1.0, 2.0, 3.0]])), targets)
        else:
            ops.linear_cross_entropy(Tensor(np.ones((1, 2))), Tensor(np.ones((3, 2))), None, targets)


def test_02_the_ignore_index_may_lie_outside_the_classes():
    logits = Tensor(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]]))
    loss = ops.cross_entropy(logits, np.array([0, -100]), ignore_index=-100)
    np.testing.assert_allclose(loss.item(), 2.40760596444438, rtol=1e-12)  # torch, ignore_index=-100


# ----- 3. gradients reduced to a broadcast input's shape -------------------------------------
@pytest.mark.needs_engine  # mse's backward calls sum_to (1.2), through the engine (1.1)
def test_03_mse_of_broadcast_shapes_gives_gradients_of_the_input_shapes():
    p, t = leaf([[1.0], [2.0], [3.0]]), leaf([0.0, 1.0, 2.0])
    ops.mse_loss(p, t).backward()
    assert p.grad.shape == (3, 1) and t.grad.shape == (3,)
    np.testing.assert_allclose(p.grad.ravel(), [0.0, 2 / 3, 4 / 3])  # torch
    np.testing.assert_allclose(t.grad, [-4 / 3, -2 / 3, 0.0])  # mean over the 9 broadcast entries


def test_03_bce_refuses_targets_of_another_shape():
    with pytest.raises(ValueError, match=r"targets of shape \(3, 4\) must have the shape of the logits, \(4,\)"):
        ops.binary_cross_entropy_with_logits(leaf(np.zeros(4)), np.zeros((3, 4)))


@task("1.3", "1.5", "1.2", "1.1")  # a bias of shape (1,) is added by add (x and W need no gradient)
def test_03_a_linear_bias_of_shape_1_gets_a_gradient_of_shape_1():
    x, w, b = Tensor(np.ones((2, 3))), Tensor(np.ones((4, 3))), leaf([0.5])
    ops.sum(ops.linear(x, w, b)).backward()
    np.testing.assert_array_equal(b.grad, [8.0])  # torch


@pytest.mark.parametrize("which", ["weight", "bias"])
def test_03_layer_norm_refuses_parameters_of_another_shape(which):
    params = {"weight": Tensor(np.ones(3)), "bias": Tensor(np.zeros(3)), which: Tensor(np.ones(1))}
    with pytest.raises(ValueError, match=rf"layer_norm: {which} of shape \(1,\) must have shape \(3,\)"):
        ops.layer_norm(Tensor(np.ones((2, 3))), params["weight"], params["bias"])


# ----- 4. only floating point tensors require grad -------------------------------------------
@pytest.mark.parametrize("make", [lambda: minisum.tensor([1, 2, 3], requires_grad=True),
                                  lambda: Tensor(np.array([True]), requires_grad=True)], ids=["int", "bool"])
def test_04_an_integer_tensor_cannot_require_grad(make):
    with pytest.raises(TypeError, match=r"requires_grad=True needs a floating point tensor, got (int64|bool)"):
        make()


def test_04_setting_requires_grad_later_is_checked_too():
    t = minisum.tensor([1, 2])
    with pytest.raises(TypeError, match="floating point"):
        t.requires_grad = True


# ----- 5. the gradient of a 0-d leaf is an array ---------------------------------------------
@task("1.3", "1.5", "1.2", "1.1")
def test_05_a_0d_leaf_gets_an_array_that_clipping_changes():
    w = leaf(3.0)
    ops.sum(w * 2.0).backward()
    assert isinstance(w.grad, np.ndarray) and w.grad.shape == ()
    assert clip_grad_norm([w], 1.0) == 2.0
    np.testing.assert_allclose(w.grad, 1.0, rtol=1e-6)  # torch: clipped to max_norm
    clip_grad_value([w], 0.5)
    assert float(w.grad) == 0.5


# ----- 6. bce gives targets a gradient -------------------------------------------------------
@pytest.mark.needs_engine  # bce belongs to no task; its gradient goes through the engine (1.1)
def test_06_bce_targets_that_require_grad_get_one():
    z, t = leaf([0.5, -1.0]), leaf([0.2, 0.9])
    ops.binary_cross_entropy_with_logits(z, t).backward()
    np.testing.assert_allclose(t.grad, [-0.25, 0.5])  # torch: -z / N


# ----- 7. targets of another shape -----------------------------------------------------------
@pytest.mark.parametrize("op", ["cross_entropy", "linear_cross_entropy"])
def test_07_targets_of_another_shape_but_the_same_size_are_refused(op):
    targets = np.array([[0, 1], [2, 3], [4, 0]])  # (3, 2) for rows (2, 3)
    with pytest.raises(ValueError, match=rf"{op}: targets of shape \(3, 2\) do not fit .* shape \(2, 3\)"):
        if op == "cross_entropy":
            ops.cross_entropy(Tensor(np.zeros((2, 3, 5))), targets)
        else:
            ops.linear_cross_entropy(Tensor(np.zeros((2, 3, 4))), Tensor(np.ones((5, 4))), None, targets)


# ----- 8. float32 stays float32 --------------------------------------------------------------
X32 = np.ones(3, dtype=np.float32)


@pytest.mark.parametrize("make", [
    lambda x: x * np.int64(2), lambda x: x / Tensor(np.ones(3, dtype=np.int64)).sum(),
    lambda x: x * np.array(2.0), lambda x: x * Tensor(np.array(2.0)), lambda x: x * np.array([1, 0, 1]),
    lambda x: x ** np.int64(2), lambda x: Tensor(np.array([1, 2])) * 0.5, lambda x: Tensor(np.array([1, 2])) / 2,
    lambda x: ops.where(np.array([True, False, True]), x, np.array(0.0)), lambda x: ops.exp(Tensor(np.array([1, 2]))),
], ids=["numpy int", "int 0-d tensor", "0-d float64 array", "0-d float64 tensor", "int array", "pow numpy int",
        "int tensor * 0.5", "int tensor / 2", "where 0-d float64", "exp of ints"])
def test_08_numbers_0d_values_and_integers_keep_float32(make):
    assert make(Tensor(X32)).dtype == np.float32


def test_08_a_float64_tensor_with_dimensions_does_promote():
    assert (Tensor(X32) * Tensor(np.ones(3))).dtype == np.float64  # as torch: both have dimensions


@task("1.3", "1.5", "1.2", "1.1")
def test_08_a_promoted_input_gets_its_gradient_in_its_own_dtype():
    x, s = leaf(X32, np.float32), leaf(2.0)  # float32 (3,), float64 0-d
    y = x * s
    assert y.dtype == np.float32
    ops.sum(y).backward()
    assert x.grad.dtype == np.float32 and s.grad.dtype == np.float64
    assert float(s.grad) == 3.0


# ----- 9. x ** 0 -------------------------------------------------------------------------------
@task("1.3", "1.5", "1.1")
def test_09_x_to_the_power_0_has_gradient_0_at_0():
    x = leaf([0.0, 2.0])
    ops.sum(x ** 0).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])  # torch


# ----- 10. sigmoid in the negative tail --------------------------------------------------------
def test_10_sigmoid_keeps_its_relative_precision_far_out():
    np.testing.assert_allclose(ops.sigmoid(Tensor(np.array([-20.0, -40.0, -700.0]))).data,
                               [2.0611536181902037e-09, 4.248354255291589e-18, 9.859676543759770e-305], rtol=1e-12)
    assert ops.sigmoid(Tensor(np.float32(-20.0))).item() == pytest.approx(2.0611537e-09, rel=1e-6)
    np.testing.assert_array_equal(ops.sigmoid(Tensor(np.array([-1000.0, 0.0, 1000.0]))).data, [0.0, 0.5, 1.0])


@task("1.4", "1.5", "1.1")
def test_10_log_of_sigmoid_and_its_gradient_far_out():
    x = leaf([-20.0, -40.0])
    y = ops.log(ops.sigmoid(x))
    ops.sum(y).backward()
    np.testing.assert_allclose(y.data, -np.logaddexp(0, [20.0, 40.0]), rtol=1e-15)  # torch: [-20.000000002, -40]
    np.testing.assert_allclose(x.grad, [1 - 2.0611536181902037e-09, 1.0], rtol=1e-15)  # 1 - sigmoid(x)


# ----- 11. tensor copies, from_numpy shares ----------------------------------------------------
def test_11_tensor_copies_the_callers_array_and_from_numpy_shares_it():
    mine = np.ones(3)
    copied, shared = minisum.tensor(mine, requires_grad=True), minisum.from_numpy(mine, requires_grad=True)
    copied.data -= 0.5  # as an optimizer step does
    np.testing.assert_array_equal(mine, [1.0, 1.0, 1.0])
    shared.data -= 0.5
    np.testing.assert_array_equal(mine, [0.5, 0.5, 0.5])
    with pytest.raises(TypeError, match="from_numpy needs an array, got list"):
        minisum.from_numpy([1.0])


# ----- 12. NumPy-integer axes and a 0-d sum over axis 0 ---------------------------------------
@task("1.5", "1.1")
def test_12_a_numpy_integer_axis_works_forward_and_backward():
    x = leaf(np.ones((2, 3)))
    ops.sum(ops.sum(x, axis=np.int64(0)), axis=[0]).backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))
    y = leaf(5.0)
    ops.sum(y, axis=0).backward()  # a 0-d tensor takes axis 0, as in torch
    assert float(y.grad) == 1.0


# ----- 13. degenerate shapes ---------------------------------------------------------------------
@pytest.mark.parametrize("call, shape, value", [
    (lambda: ops.softmax(Tensor(np.array(3.0))), (), 1.0),
    (lambda: ops.log_softmax(Tensor(np.array(3.0))), (), 0.0),
    (lambda: ops.softmax(Tensor(np.ones((3, 0)))), (3, 0), None),
    (lambda: ops.log_softmax(Tensor(np.ones((3, 0)))), (3, 0), None),
    (lambda: ops.mean(Tensor(np.ones((3, 0))), axis=0), (0,), None),
    (lambda: ops.sum(Tensor(np.ones((3, 0))), axis=1), (3,), 0.0),
], ids=["softmax 0-d", "log_softmax 0-d", "softmax 3x0", "log_softmax 3x0", "mean 3x0 axis 0", "sum 3x0 axis 1"])
def test_13_degenerate_shapes_answer_as_torch_does(call, shape, value):
    out = call()
    assert out.shape == shape
    if value is not None:
        np.testing.assert_array_equal(out.data, value)


def test_13_the_running_sum_of_a_0d_tensor_is_itself():
    y = ops.cumsum(leaf(2.0), axis=0)
    assert y.shape == () and y.item() == 2.0
    assert float(y.creator.backward(np.array(3.0))) == 3.0


@pytest.mark.parametrize("call, fragment", [
    (lambda: ops.sum(Tensor(np.ones((3, 2))), axis=2), r"sum: axis 2 is out of range .* allowed are -2 to 1"),
    (lambda: ops.mean(Tensor(np.ones(3)), axis=-2), r"mean: axis -2 is out of range"),
    (lambda: ops.max(Tensor(np.ones(())), axis=1), r"max: axis 1 is out of range .* 0 dimension"),
    (lambda: ops.cumsum(Tensor(np.ones((2, 2))), axis=5), r"cumsum: axis 5 is out of range"),
])
def test_13_an_axis_out_of_range_is_named(call, fragment):
    with pytest.raises(IndexError, match=fragment):
        call()


def test_13_the_max_of_an_empty_axis_is_refused():
    with pytest.raises(ValueError, match=r"max: a tensor of shape \(3, 0\) has no maximum"):
        ops.max(Tensor(np.ones((3, 0))), axis=1)


# ----- 14. dropout's p -------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1.5, -0.5])
def test_14_dropout_refuses_p_outside_0_1(p):
    with pytest.raises(ValueError, match=rf"dropout probability p must be in \[0, 1\], got {p}"):
        ops.dropout(Tensor(np.ones(4)), p, training=True)


def test_14_dropout_with_p_1_drops_everything():
    np.testing.assert_array_equal(ops.dropout(Tensor(np.ones(4)), 1.0, training=True).data, np.zeros(4))


# ----- 15. graph errors --------------------------------------------------------------------------
@task("1.3", "1.1")
def test_15_backward_through_a_released_trunk_says_so():
    x = leaf([1.0, 2.0])
    y = -x
    (-y).backward(np.ones(2), free_graph=True)  # releases y's op too
    with pytest.raises(RuntimeError, match=r"released: compute the forward pass again"):
        (-y).backward(np.ones(2))


def test_15_backward_on_a_tensor_that_requires_no_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (Tensor(np.ones(2)) * 2.0).sum().backward()


# ----- 16. the Python protocol -------------------------------------------------------------------
def test_16_truth_and_conversions_of_one_element_tensors():
    x = Tensor(np.array([1.0, 2.0]))
    assert bool(x[0:1] > 5) is False and bool(x[1] > 1) is True
    assert float(x[1]) == 2.0 and int(x[1]) == 2
    with pytest.raises(ValueError, match=r"one element .* shape \(2,\)"):
        bool(x > 0)
    assert +x is x


@task("1.3", "1.5", "1.2", "1.1")
def test_16_powers_with_tensor_exponents_and_abs():
    x = leaf([1.0, 2.0])
    e = leaf([2.0, 3.0])
    y = x ** e + 2 ** x + abs(-x)
    np.testing.assert_allclose(y.data, [1 + 2 + 1, 8 + 4 + 2])
    ops.sum(y).backward()
    np.testing.assert_allclose(x.grad, [2 + 2 * np.log(2) + 1, 12 + 4 * np.log(2) + 1])  # torch
    np.testing.assert_allclose(e.grad, [0.0, 8 * np.log(2)])


def test_16_sum_over_a_list_of_axes():
    assert ops.sum(Tensor(np.ones((2, 3))), axis=[0, 1]).item() == 6.0
    assert Tensor(np.ones((2, 3))).sum(axis=[0]).shape == (3,)


# ----- 17. devices -------------------------------------------------------------------------------
def test_17_mixing_devices_names_both_and_module_to_moves_the_parameters():
    minisum.set_device("cpu")
    layer = Linear(3, 2)  # built on the CPU
    with emulated_gpu() as cupy:
        x = Tensor(cupy.ones((4, 3), dtype=np.float32))
        with pytest.raises(TypeError, match=r"cannot mix NumPy and CuPy arrays in one op: Linear got arrays on "
                                            r"both devices, cpu \(NumPy\) and gpu \(CuPy\); move the model with model.to"):
            layer(x)
        assert layer.to("gpu") is layer
        assert all(type(p.data).__module__.startswith("cupy") for p in layer.parameters())
        assert layer(x).shape == (4, 2)
        layer.to("cpu")
        assert all(isinstance(p.data, np.ndarray) for p in layer.parameters())


# ----- 18. the operators are Tensor's own ------------------------------------------------------
def test_18_importing_the_engine_alone_gives_a_tensor_with_operators():
    for name in ("__add__", "__matmul__", "__getitem__", "__pow__", "__rpow__", "sum", "reshape", "T"):
        assert name in vars(Tensor), name
    code = ("import numpy as np; from minisum.autograd import Tensor; t = Tensor(np.ones(2)); "
            "print(float((t + t @ t).sum()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "6.0", done.stderr


# ----- 19. the fused output layer: see test_linear_cross_entropy.py (gradients only where required,
# bias=None); Max computes its maximum once.
def test_19_max_computes_its_maximum_once():
    calls = []

    class Counted(np.ndarray):
        def max(self, *args, **kwargs):
            calls.append(1)
            return super().max(*args, **kwargs)

    x = np.arange(6.0).reshape(2, 3).view(Counted)
    y = ops.max(Tensor(x), axis=1)
    assert y.shape == (2,) and len(calls) == 1
    np.testing.assert_array_equal(y.data, [2.0, 5.0])


# ----- 20. the summation layer's docstring says what the code does -----------------------------
def test_20_the_language_models_positional_table_is_n01_as_the_docstring_says():
    minisum.seed(0)
    model = LanguageModel(vocab_size=11, d_model=64, n_layers=1, n_heads=2, max_len=64, mixer="summation")
    assert 0.9 < float(model.pos_embedding.weight.data.std()) < 1.1
    assert "N(0, 1)" in positional_modulation.__doc__ and "pos ~ 0" not in positional_modulation.__doc__


# ----- issue 20, item 7: the Function contract, checked by backward() ----------------------------
class Broken(Function):
    """y = 2x, with a backward that breaks the contract in the way `mistake` says."""

    def __init__(self, mistake):
        self.mistake = mistake

    def forward(self, x):
        return 2 * x

    def backward(self, gy):
        if self.mistake == "count":
            return 2 * gy, None
        if self.mistake == "shape":
            return (2 * gy).sum(keepdims=True)
        return (2 * gy).astype(np.float32)


@task("1.1")
@pytest.mark.parametrize("mistake, fragment", [
    ("count", r"Broken.backward returned 2 gradient\(s\) for 1 input\(s\)"),
    ("shape", r"Broken.backward returned a gradient of shape \(1,\) for input 0 of shape \(3,\)"),
    ("dtype", r"Broken.backward returned a float32 gradient for input 0 of dtype float64"),
])
def test_a_backward_that_breaks_the_contract_is_named(mistake, fragment):
    y = Broken(mistake)(leaf([1.0, 2.0, 3.0]))
    assert _topological_order(y) == [y.creator]  # the walk itself (NotImplementedError is a RuntimeError)
    with pytest.raises(RuntimeError, match=fragment):
        y.backward(np.ones(3))


@task("1.1")
def test_topological_order_starts_at_the_roots_op():
    x = leaf([1.0, 2.0])
    y = ops.reshape(ops.transpose(x), 2)
    order = _topological_order(y)
    assert order[0] is y.creator and len(order) == 2


@pytest.mark.parametrize("op", ["cross_entropy", "linear_cross_entropy"])
def test_02_on_the_gpu_a_target_out_of_range_makes_the_loss_nan_without_a_wait(op):
    """GPU targets are not read back (a host sync per step): a bad one poisons the loss instead."""
    with emulated_gpu() as cupy:
        targets = cupy.asarray(np.array([0, -1, 3]))
        if op == "cross_entropy":
            loss = ops.cross_entropy(Tensor(cupy.ones((3, 3))), targets, ignore_index=-1)
        else:
            loss, _ = ops.linear_cross_entropy(Tensor(cupy.ones((3, 2))), Tensor(cupy.ones((3, 2))), None,
                                               targets, ignore_index=-1)
        assert cupy._emulation.counts.syncs == 0
        assert np.isnan(loss.item())  # the target 3; the -1 is ignored
        fine = cupy.asarray(np.array([0, -1, 2]))
        if op == "cross_entropy":
            assert np.isfinite(ops.cross_entropy(Tensor(cupy.ones((3, 3))), fine, ignore_index=-1).item())
