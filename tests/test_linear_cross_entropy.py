"""The fused output layer + cross-entropy (ops/linear_cross_entropy.py): gradient checks, the
unfused ops (ops.linear, then ops.cross_entropy), padding, chunking, the gradients only of the
inputs that want one, the GPU's host syncs, and the language model's loss built on it.

The fused op's whole gradient is task 2.1 (its blocks), so its tests are graded there; they
also run the engine (1.1), and those that compare with ops.linear its backward (1.6)."""
import importlib

import numpy as np
import pytest

import minisum
from minisum import Tensor, no_grad, ops
from minisum.backend import get_array_module
from minisum.gradcheck import gradcheck
from minisum.models import LanguageModel
from conftest import emulated_gpu, on_device, task, to_float64, to_host

fused_module = importlib.import_module("minisum.ops.linear_cross_entropy")  # ops.linear_cross_entropy is the function

PAD = 0


@pytest.fixture(params=["kept rows", "all rows"])
def rows(request, monkeypatch):
    """Both ways of skipping pads: NumPy gathers the kept rows; CuPy computes every row and
    weights the pads 0 (exercised here on NumPy too)."""
    if request.param == "all rows":
        monkeypatch.setattr(fused_module, "rows_to_compute", lambda keep: get_array_module(keep).arange(keep.size))
    return request.param


def problem(rng, batch=2, length=5, features=4, vocab=7):
    """Float64 x (B, T, C), W (V, C), b (V,) and targets with pads, on the host; one row's logits
    are large (a missing max-shift would overflow), and three targets are the argmax (hits)."""
    x = rng.standard_normal((batch, length, features))
    x[0, -1] *= 300
    weight, bias = rng.standard_normal((vocab, features)), rng.standard_normal(vocab)
    x[0, 0], bias[PAD] = 0, np.abs(bias).max() + 1  # a pad row whose argmax is the pad id: no hit all the same
    targets = rng.integers(1, vocab, (batch, length))
    targets[1, :3] = (x[1, :3] @ weight.T + bias).argmax(-1)
    targets[0, :2] = targets[1, -1] = PAD
    return x, weight, bias, targets


def leaves(*arrays):
    return [Tensor(on_device(a), requires_grad=True) for a in arrays]


@task("2.1", "1.1")  # the fused op's gradient, walked by the engine
@pytest.mark.parametrize("chunk_rows", [None, 1, 3])  # one chunk; one row at a time; an uneven last chunk
def test_gradients_by_central_differences(chunk_rows, rows, rng):
    x, weight, bias, targets = problem(rng)
    x[0, -1] /= 300  # finite differences need moderate logits
    targets = on_device(targets)
    gradcheck(lambda *a: ops.linear_cross_entropy(*a, targets, ignore_index=PAD, chunk_rows=chunk_rows)[0],
              *leaves(x, weight, bias))


def unfused(x, weight, bias, targets, ignore_index):
    """The same loss from the ops it fuses: the (N, V) logits of ops.linear, then ops.cross_entropy."""
    return ops.cross_entropy(ops.linear(x, weight, bias), targets, ignore_index=ignore_index)


@task("2.1", "1.6", "1.1")
@pytest.mark.parametrize("ignore_index", [None, PAD])
@pytest.mark.parametrize("chunk_rows", [None, 2, 3])
def test_matches_the_unfused_ops(ignore_index, chunk_rows, rows, rng, monkeypatch):
    monkeypatch.setattr(fused_module, "VOCAB_SLICE", 3)  # dW in slices of 3, 3 and 1 of the 7 words
    x, weight, bias, targets = problem(rng)
    fused_inputs, unfused_inputs = leaves(x, weight, bias), leaves(x, weight, bias)
    loss, hits = ops.linear_cross_entropy(*fused_inputs, on_device(targets), ignore_index=ignore_index,
                                          chunk_rows=chunk_rows)
    expected = unfused(*unfused_inputs, on_device(targets), ignore_index)
    np.testing.assert_allclose(to_host(loss), to_host(expected), rtol=1e-12)
    counted = targets != PAD if ignore_index == PAD else True
    assert int(to_host(hits)) == ((x @ weight.T + bias).argmax(-1) == targets)[counted].sum()
    upstream = on_device(rng.standard_normal())
    loss.backward(upstream)
    expected.backward(upstream)
    for name, a, b in zip(["x", "weight", "bias"], fused_inputs, unfused_inputs):
        np.testing.assert_allclose(to_host(a.grad), to_host(b.grad), rtol=1e-10, atol=1e-13,
                                   err_msg=f"gradient of {name}")


@task("2.1", "1.6", "1.1")
def test_without_a_bias_it_matches_the_unfused_ops(rng):
    x, weight, _, targets = problem(rng)
    x[0, -1] /= 300
    fused_inputs, unfused_inputs = leaves(x, weight), leaves(x, weight)
    loss, _ = ops.linear_cross_entropy(*fused_inputs, None, on_device(targets), chunk_rows=3)
    expected = unfused(*unfused_inputs, None, on_device(targets), None)
    np.testing.assert_allclose(to_host(loss), to_host(expected), rtol=1e-12)
    loss.backward()
    expected.backward()
    for name, a, b in zip(["x", "weight"], fused_inputs, unfused_inputs):
        np.testing.assert_allclose(to_host(a.grad), to_host(b.grad), rtol=1e-10, atol=1e-13, err_msg=name)
    gradcheck(lambda *a: ops.linear_cross_entropy(*a, None, on_device(targets), chunk_rows=3)[0],
              *leaves(x, weight))


@task("2.1", "1.1")
@pytest.mark.parametrize("wanted", ["x", "weight", "bias"])
def test_only_the_inputs_that_require_grad_get_one(wanted, rng):
    """dW is as large as W: it is neither computed nor held when W needs no gradient."""
    x, weight, bias, targets = problem(rng)
    x[0, -1] /= 300
    inputs = [Tensor(on_device(a), requires_grad=(name == wanted))
              for name, a in zip(["x", "weight", "bias"], (x, weight, bias))]
    loss, _ = ops.linear_cross_entropy(*inputs, on_device(targets), ignore_index=PAD)
    held = [g is not None for g in loss.creator.grads]
    assert held == [name == wanted for name in ["x", "weight", "bias"]]
    loss.backward()
    for name, t in zip(["x", "weight", "bias"], inputs):
        assert (t.grad is not None) == (name == wanted), name
    reference = leaves(x, weight, bias)
    ops.linear_cross_entropy(*reference, on_device(targets), ignore_index=PAD)[0].backward()
    got = inputs[["x", "weight", "bias"].index(wanted)].grad
    np.testing.assert_allclose(to_host(got), to_host(reference[["x", "weight", "bias"].index(wanted)].grad),
                               rtol=1e-12, atol=1e-15)


def test_no_input_that_requires_grad_means_no_gradient_at_all(rng):
    x, weight, bias, targets = (on_device(a) for a in problem(rng))
    loss, _ = ops.linear_cross_entropy(Tensor(x), Tensor(weight), Tensor(bias), targets)
    assert loss.creator is None and not loss.requires_grad


@task("2.1", "1.1")
def test_pad_rows_get_no_gradient_and_no_hits(rows, rng):
    x, weight, bias, targets = problem(rng)
    inputs = leaves(x, weight, bias)
    loss, _ = ops.linear_cross_entropy(*inputs, on_device(targets), ignore_index=PAD)
    loss.backward()
    gx = to_host(inputs[0].grad)
    assert np.all(gx[targets == PAD] == 0) and np.all(gx[targets != PAD] != 0)

    for t in inputs:
        t.grad = None
    loss, hits = ops.linear_cross_entropy(*inputs, on_device(np.full_like(targets, PAD)), ignore_index=PAD)
    loss.backward()
    assert loss.item() == 0.0 and int(to_host(hits)) == 0
    assert not any(to_host(t.grad).any() for t in inputs)


@task("2.1")  # the loss with x requiring grad computes dX in the forward pass
def test_no_grad_gives_the_same_loss_and_hits(rng):
    x, weight, bias, targets = (on_device(a) for a in problem(rng))
    loss, hits = ops.linear_cross_entropy(Tensor(x, requires_grad=True), weight, bias, targets, ignore_index=PAD)
    with no_grad():
        eval_loss, eval_hits = ops.linear_cross_entropy(x, weight, bias, targets, ignore_index=PAD)
    assert eval_loss.item() == loss.item() and int(to_host(eval_hits)) == int(to_host(hits))
    assert eval_loss.creator is None


@task("2.1", "1.1")
def test_a_second_backward_says_why_it_cannot(rng):
    x, weight, bias, targets = (on_device(a) for a in problem(rng))
    loss, _ = ops.linear_cross_entropy(Tensor(x, requires_grad=True), weight, bias, targets)
    loss.backward()
    with pytest.raises(RuntimeError, match="once per forward"):
        loss.backward()


def test_features_that_do_not_fit_the_weight_are_named(rng):
    x, weight, bias, targets = (on_device(a) for a in problem(rng))
    with pytest.raises(ValueError, match=r"last axis must be 4"):
        ops.linear_cross_entropy(x[..., :3], weight, bias, targets)


@task("2.1", "1.1")
def test_on_the_gpu_it_never_waits_for_the_device(rng):
    """The emulated GPU counts host syncs: none in the forward and backward, and the same
    numbers as on the host (every row computed there, the pads weighted 0)."""
    x, weight, bias, targets = problem(rng)
    host = [Tensor(a, requires_grad=True) for a in (x, weight, bias)]
    loss, hits = ops.linear_cross_entropy(*host, targets, ignore_index=PAD, chunk_rows=3)
    loss.backward()
    with emulated_gpu() as cupy:
        device = [Tensor(cupy.asarray(a), requires_grad=True) for a in (x, weight, bias)]
        device_targets = cupy.asarray(targets)
        cupy._emulation.counts.reset()
        device_loss, device_hits = ops.linear_cross_entropy(*device, device_targets, ignore_index=PAD, chunk_rows=3)
        device_loss.backward()
        syncs = cupy._emulation.counts.syncs
        results = [cupy.asnumpy(a) for a in (device_loss.data, device_hits, *(t.grad for t in device))]
    assert syncs == 0
    for name, ours, theirs in zip(["loss", "hits", "x", "weight", "bias"], results,
                                  [loss.data, hits, *(t.grad for t in host)]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15, err_msg=name)


@pytest.mark.needs_engine  # the whole model: code of most tasks
@pytest.mark.parametrize("mixer", ["summation", "hybrid"])
def test_language_model_loss_equals_the_unfused_path(mixer):
    """model.loss (fused) against cross_entropy(model(ids)): the same loss, hits and gradients."""
    minisum.seed(0)
    model = to_float64(LanguageModel(vocab_size=11, d_model=8, n_layers=2, n_heads=2, max_len=8, mixer=mixer))
    ids = np.random.default_rng(0).integers(1, 11, (3, 7))
    ids[1, -3:] = PAD
    inputs, targets = on_device(ids[:, :-1]), on_device(ids[:, 1:])

    logits = model(inputs)
    unfused = ops.cross_entropy(logits, targets, ignore_index=PAD)
    unfused.backward()
    expected = {name: to_host(p.grad).copy() for name, p in model.named_parameters()}
    unfused_hits = ((to_host(logits).argmax(-1) == ids[:, 1:]) & (ids[:, 1:] != PAD)).sum()
    model.zero_grad()

    loss, hits = model.loss(inputs, targets, pad_id=PAD)
    loss.backward()
    np.testing.assert_allclose(loss.item(), unfused.item(), rtol=1e-12)
    assert int(to_host(hits)) == unfused_hits
    for name, p in model.named_parameters():
        np.testing.assert_allclose(to_host(p.grad), expected[name], rtol=1e-9, atol=1e-12, err_msg=name)
