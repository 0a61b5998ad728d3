"""Tests of AdamW, gradient clipping and the warmup-cosine schedule (callbacks: test_callbacks.py)."""
import functools
import math

import numpy as np
import pytest

import minisum
from conftest import TEST_SEED, on_device, task, to_host
from minisum.optim import AdamW, clip_grad_norm, clip_grad_value, warmup_cosine


def leaf(values):
    return minisum.tensor(np.array(values, dtype=np.float64), requires_grad=True)


def gradient_sequence(shape, steps, seed=0):
    rng = np.random.default_rng(TEST_SEED + seed)
    return [rng.standard_normal(shape) for _ in range(steps)]


def run_adamw(w0, grads, **hyper):
    w = leaf(w0)
    optimizer = AdamW([w], **hyper)
    for g in grads:
        w.grad = on_device(g.copy())  # a copy: the reference below reads the same gradients
        optimizer.step()
        np.testing.assert_array_equal(to_host(w.grad), g, err_msg="the update changed the gradient it was given")
    return to_host(w)


def adamw_reference(w0, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Loshchilov & Hutter's AdamW (as torch.optim.AdamW), one scalar weight at a time."""
    b1, b2 = betas
    w = [float(x) for x in np.ravel(w0)]
    m, v = [0.0] * len(w), [0.0] * len(w)
    for t, g in enumerate(grads, start=1):
        g = np.ravel(g)
        for i in range(len(w)):
            w[i] -= lr * weight_decay * w[i]  # decoupled: the decay never enters m or v
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            w[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return np.reshape(w, np.shape(w0))


def adam_textbook(w0, grads, lr, betas=(0.9, 0.999), eps=1e-8):
    """Kingma & Ba, Algorithm 1, on whole arrays."""
    b1, b2 = betas
    w, m, v = np.array(w0, dtype=np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return w


# ---- AdamW --------------------------------------------------------------------------


@task("5.1", weight=4)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_matches_the_elementwise_reference(weight_decay):
    w0 = np.random.default_rng(TEST_SEED + 1).standard_normal((3, 4))
    grads = gradient_sequence((3, 4), steps=5)
    hyper = dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=weight_decay)
    np.testing.assert_allclose(run_adamw(w0, grads, **hyper), adamw_reference(w0, grads, **hyper),
                               rtol=1e-12, atol=1e-14)


@task("5.1", weight=4)
def test_adamw_in_blocks_matches_the_elementwise_reference(monkeypatch):
    # The CPU update walks each parameter in blocks of BLOCK entries; 4 cuts this one into 4.
    monkeypatch.setattr(minisum.optim, "BLOCK", 4)
    w0 = np.random.default_rng(TEST_SEED + 5).standard_normal((3, 5))
    grads = gradient_sequence((3, 5), steps=4, seed=6)
    hyper = dict(lr=0.01, weight_decay=0.1)
    np.testing.assert_allclose(run_adamw(w0, grads, **hyper), adamw_reference(w0, grads, **hyper),
                               rtol=1e-12, atol=1e-14)


@task("5.1", weight=4)
def test_adamw_updates_a_parameter_that_is_a_transposed_view():
    w0 = np.random.default_rng(TEST_SEED + 7).standard_normal((4, 3))
    grads = gradient_sequence((3, 4), steps=3, seed=8)
    w = minisum.Tensor(on_device(w0.copy()).T, requires_grad=True)  # not C-contiguous: no flat view
    optimizer = AdamW([w], lr=0.01)
    for g in grads:
        w.grad = on_device(g)
        optimizer.step()
    np.testing.assert_allclose(to_host(w), adamw_reference(w0.T, grads, lr=0.01), rtol=1e-12, atol=1e-14)


@task("5.1", weight=4)
def test_adamw_without_weight_decay_is_textbook_adam():
    w0 = np.random.default_rng(TEST_SEED + 2).standard_normal(6)
    grads = gradient_sequence(6, steps=7, seed=3)
    np.testing.assert_allclose(run_adamw(w0, grads, lr=0.05), adam_textbook(w0, grads, lr=0.05),
                               rtol=1e-12, atol=1e-14)


def keras_adam(w0, grads, lr, betas=(0.9, 0.999), eps=1e-7):
    """Keras' Adam (keras/optimizers/adam.py, 2.12 and 3): epsilon added to sqrt(v), not sqrt(v_hat)."""
    b1, b2 = betas
    w, m, v = np.array(w0, dtype=np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        w = w - m * alpha / (np.sqrt(v) + eps)
    return w


@task("5.1", weight=4)
def test_adamw_keras_eps_style_is_keras_adam():
    # Gradients of 1e-4 make eps matter: the two placements then differ by ~10%.
    w0 = np.random.default_rng(TEST_SEED + 2).standard_normal(6)
    grads = [1e-4 * g for g in gradient_sequence(6, steps=5, seed=4)]
    hyper = dict(lr=0.05, eps=1e-5)
    keras = run_adamw(w0, grads, eps_style="keras", **hyper)
    np.testing.assert_allclose(keras, keras_adam(w0, grads, **hyper), rtol=1e-12, atol=1e-14)
    assert np.abs(keras - adam_textbook(w0, grads, **hyper)).max() > 1e-3


@task("5.1", weight=4)
def test_adamw_first_step_moves_each_weight_by_lr_against_its_gradient():
    # At t = 1, m_hat = g and v_hat = g^2: the step is lr * g / (|g| + eps) ~ lr * sign(g).
    g = np.array([1e-3, -5.0, 200.0])
    w = run_adamw([1.0, 1.0, 1.0], [g], lr=0.1, eps=1e-8)
    np.testing.assert_allclose(w, 1.0 - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    np.testing.assert_allclose(w, [0.9, 1.1, 0.9], rtol=1e-5)  # whatever the gradient's scale


@task("5.1", weight=4)
def test_adamw_weight_decay_alone_shrinks_by_one_minus_lr_times_decay():
    # With zero gradients m = v = 0, so only the decoupled decay acts: w <- w (1 - lr wd).
    w = run_adamw([2.0, -4.0], [np.zeros(2)] * 3, lr=0.1, weight_decay=0.5)
    np.testing.assert_allclose(w, np.array([2.0, -4.0]) * 0.95 ** 3, rtol=1e-12)


@task("5.1", weight=4)
def test_adamw_skips_parameters_without_gradient():
    a, b = leaf([1.0, 2.0]), leaf([3.0])
    optimizer = AdamW([a, b], lr=0.1, weight_decay=0.1)
    a.grad = on_device([1.0, 1.0])
    optimizer.step()
    np.testing.assert_array_equal(to_host(b), [3.0])
    assert not np.array_equal(to_host(a), [1.0, 2.0])


@task("5.1")
def test_adamw_keeps_float32_parameters_float32():
    w = minisum.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    optimizer = AdamW([w], lr=0.1, weight_decay=0.01)
    w.grad = on_device(np.ones(3, dtype=np.float32))
    optimizer.step()
    assert w.dtype == np.float32


@pytest.mark.needs_engine
def test_adamw_state_dict_moves_the_state_to_a_new_optimizer():
    w0 = np.random.default_rng(TEST_SEED + 4).standard_normal(5)
    grads = gradient_sequence(5, steps=4, seed=5)
    w = leaf(w0)
    first = AdamW([w], lr=0.01, weight_decay=0.1)
    for g in grads[:2]:
        w.grad = on_device(g)
        first.step()
    second = AdamW([w], lr=0.5, weight_decay=0.1)  # the state brings lr (and the step count), not the decay
    second.load_state_dict(first.state_dict())
    for g in grads[2:]:
        w.grad = on_device(g)
        second.step()
    np.testing.assert_allclose(to_host(w), adamw_reference(w0, grads, lr=0.01, weight_decay=0.1), rtol=1e-12)


@pytest.mark.needs_engine
def test_adamw_state_is_copied_not_shared():
    w = leaf([1.0, 2.0])
    first = AdamW([w])
    w.grad = on_device([1.0, -1.0])
    first.step()
    state = first.state_dict()
    second = AdamW([w])
    second.load_state_dict(state)
    second.step()  # updates second's moments in place
    np.testing.assert_array_equal(to_host(first.m[0]), to_host(state["m.0"]))
    assert second.m[0] is not state["m.0"]


def test_adamw_load_state_dict_rejects_a_wrong_shape():
    optimizer = AdamW([leaf([1.0, 2.0])])
    with pytest.raises(ValueError, match=r"m.0 has shape \(3,\).*parameter 0 has shape \(2,\)"):
        optimizer.load_state_dict({"step_count": 1, "lr": 0.1, "m.0": np.zeros(3), "v.0": np.zeros(3)})


# ---- clipping -----------------------------------------------------------------------


def test_clip_grad_value_clamps_each_entry():
    a, b, c = leaf([0.0, 0.0, 0.0]), leaf([0.0]), leaf([0.0])
    a.grad, b.grad = on_device([-3.0, 0.5, 2.0]), on_device([-0.25])
    clip_grad_value([a, b, c], 1.0)
    np.testing.assert_array_equal(to_host(a.grad), [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(to_host(b.grad), [-0.25])
    assert c.grad is None


def test_clip_grad_norm_scales_all_gradients_together():
    a, b = leaf([0.0, 0.0]), leaf([0.0])
    a.grad, b.grad = on_device([3.0, 0.0]), on_device([4.0])  # global norm 5
    assert clip_grad_norm([a, b], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([to_host(a.grad), to_host(b.grad)]), [0.6, 0.0, 0.8], rtol=1e-6)
    assert clip_grad_norm([a, b], 10.0) == pytest.approx(1.0, rel=1e-5)  # already small: untouched
    np.testing.assert_allclose(np.concatenate([to_host(a.grad), to_host(b.grad)]), [0.6, 0.0, 0.8], rtol=1e-6)


@pytest.mark.needs_engine
def test_clipping_works_on_gradients_that_backward_produced():
    # The two inputs of `a + b` receive the same upstream array, and a sum's backward is a
    # broadcast (read-only) view: clipping one leaf in place must not clip the other twice.
    a, b = leaf([2.0, 2.0]), leaf([2.0, 2.0])
    ((a + b) * 3.0).sum().backward()
    clip_grad_norm([a, b], 3.0)  # gradients 3 everywhere, global norm 6
    np.testing.assert_allclose(to_host(a.grad), [1.5, 1.5], rtol=1e-6)
    np.testing.assert_allclose(to_host(b.grad), [1.5, 1.5], rtol=1e-6)
    c, d = leaf([1.0]), leaf([1.0])
    (c + d).sum().backward()
    clip_grad_value([c, d], 0.5)
    np.testing.assert_array_equal(np.concatenate([to_host(c.grad), to_host(d.grad)]), [0.5, 0.5])


# ---- schedule -----------------------------------------------------------------------


def test_warmup_cosine_values():
    lr = functools.partial(warmup_cosine, base_lr=1.0, warmup_steps=4, total_steps=12)
    assert [lr(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # linear warmup
    assert lr(4) == pytest.approx(1.0)  # cosine starts at the top
    assert lr(8) == pytest.approx(0.5)  # half way: cos(pi / 2) = 0
    assert lr(6) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr(12) == pytest.approx(0.0, abs=1e-12)
    assert lr(30) == pytest.approx(0.0, abs=1e-12)  # stays at the floor after the end
    assert lr(8, min_lr=0.1) == pytest.approx(0.55)
    assert lr(12, min_lr=0.1) == pytest.approx(0.1)
