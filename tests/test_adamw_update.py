"""Task 5.1: AdamW.step with your adamw_update, against numbers computed once and rules of thumb.

Every step goes through `step`, which hands the optimizer copies of the test's gradients and
fails an update that changes them: the gradient is the optimizer's input, not its scratch space.
(tests/test_optim.py, which writes AdamW out one scalar at a time, joins the handout once 5.1
is handed out solved.)
"""
import numpy as np
import pytest

import minisum
from conftest import on_device, task, to_host, vary
from minisum.optim import AdamW

W0 = [[0.5, -1.0, 2.0], [0.0, 1.5, -0.5]]
GRADS = [[[0.1, -0.2, 0.3], [1.0, 0.0, -2.0]], [[0.3, 0.1, -0.1], [-1.0, 0.5, -2.0]],
         [[-0.2, 0.4, 0.0], [0.5, 0.5, 1.0]]]
HYPER = dict(lr=0.1, betas=(0.8, 0.95), eps=1e-6)
# W0 after the three GRADS with HYPER, computed once with torch.optim.AdamW's algorithm
AFTER = {0.1: [[0.27499043897422915, -0.9049905793772265, 1.7820563068780992],
               [-0.10324046942809055, 1.2894223269976854, -0.2432668575134805]],
         0.0: [[0.28691638220668525, -0.9324891315349351, 1.839116858946956],
               [-0.10511935643809243, 1.3331980380508033, -0.25512735900847977]]}


def step(optimizer, grads):
    """Give each parameter a copy of its gradient, take one step, and check the gradients were left alone."""
    for p, g in zip(optimizer.params, grads):
        p.grad = None if g is None else on_device(np.array(g, dtype=p.dtype))
    optimizer.step()
    for p, g in zip(optimizer.params, grads):
        if g is not None:
            np.testing.assert_array_equal(to_host(p.grad), np.array(g, dtype=p.dtype),
                                          err_msg="the update changed the gradient it was given")


def leaf(values, dtype=np.float64):
    return minisum.Tensor(on_device(np.array(values, dtype=dtype)), requires_grad=True)


@task("5.1", weight=4)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_three_steps_give_the_numbers_computed_once(weight_decay):
    w = leaf(W0)
    optimizer = AdamW([w], weight_decay=weight_decay, **HYPER)
    for g in GRADS:
        step(optimizer, [g])
    np.testing.assert_allclose(to_host(w), AFTER[weight_decay], rtol=1e-10)


@task("5.1", weight=4)
def test_a_parameter_cut_into_blocks_gets_the_same_numbers(monkeypatch):
    monkeypatch.setattr(minisum.optim, "BLOCK", 4)  # AdamW.step updates the 6 entries as blocks of 4 and 2
    w = leaf(W0)
    optimizer = AdamW([w], weight_decay=0.1, **HYPER)
    for g in GRADS:
        step(optimizer, [g])
    np.testing.assert_allclose(to_host(w), AFTER[0.1], rtol=1e-10)


@task("5.1", weight=4)
def test_a_transposed_parameter_gets_the_same_numbers():
    w = minisum.Tensor(on_device(np.array(W0).T.copy()).T, requires_grad=True)  # not C-contiguous
    optimizer = AdamW([w], weight_decay=0.1, **HYPER)
    for g in GRADS:
        step(optimizer, [g])
    np.testing.assert_allclose(to_host(w), AFTER[0.1], rtol=1e-10)


@task("5.1", weight=4)
def test_the_first_step_moves_each_weight_by_lr_against_its_gradient():
    # At t = 1, m_hat = g and v_hat = g^2: the step is lr * g / (|g| + eps), about lr * sign(g).
    n = vary(5, most=1200)
    g = np.random.default_rng(n).standard_normal(n) * np.logspace(-3, 2, n)  # every scale
    w = leaf(np.ones(n))
    step(AdamW([w], lr=0.1, eps=1e-8), [g])
    np.testing.assert_allclose(to_host(w), 1.0 - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-10)


@task("5.1", weight=4)
def test_weight_decay_alone_shrinks_by_one_minus_lr_times_decay():
    # With zero gradients m = v = 0, so only the decoupled decay acts: w <- w (1 - lr wd).
    w = leaf([2.0, -4.0, 0.5])
    optimizer = AdamW([w], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        step(optimizer, [np.zeros(3)])
    np.testing.assert_allclose(to_host(w), np.array([2.0, -4.0, 0.5]) * 0.95 ** 3, rtol=1e-12)


@task("5.1", weight=4)
def test_a_constant_gradient_moves_by_lr_every_step():
    # m_hat = g and v_hat = g^2 at every step when g never changes: each step is lr * sign(g)
    w = leaf([[1.0, -1.0], [0.0, 3.0]])
    optimizer = AdamW([w], lr=0.01, eps=1e-12)
    for _ in range(vary(10, most=40)):
        step(optimizer, [[[0.5, -2.0], [1e-3, 7.0]]])
    steps = optimizer.step_count
    np.testing.assert_allclose(to_host(w), np.array([[1.0, -1.0], [0.0, 3.0]]) - 0.01 * steps * np.sign(
        [[0.5, -2.0], [1e-3, 7.0]]), rtol=1e-8)


@task("5.1", weight=2)
def test_a_parameter_without_gradient_stays_as_it_is():
    a, b = leaf([1.0, 2.0]), leaf([3.0])
    step(AdamW([a, b], lr=0.1, weight_decay=0.1), [[1.0, 1.0], None])
    np.testing.assert_array_equal(to_host(b), [3.0])
    np.testing.assert_allclose(to_host(a), np.array([1.0, 2.0]) * 0.99 - 0.1, rtol=1e-6)


@task("5.1")
def test_float32_parameters_stay_float32():
    w = leaf(np.ones(3), dtype=np.float32)
    step(AdamW([w], lr=0.1, weight_decay=0.01), [np.ones(3)])
    assert w.dtype == np.float32 and to_host(w).dtype == np.float32
