"""Tests of the layers in minisum/nn: gradients, forward formulas, dropout, initialisation.

Gradient checks run in float64 on tiny sizes: each layer is built, its parameters are
cast to float64, and `gradcheck` compares backward() with central differences for the
input and every parameter at once.
"""
import math

import numpy as np
import pytest

import minisum
from conftest import on_device, to_float64, to_host
from minisum import gradcheck
from minisum.models import AttentionClassifier, AttentionFusionRegressor, SummationClassifier
from minisum.nn import (CausalSummation, Dense, Dropout, Embedding, LayerNorm, Linear, MultiHeadAttention,
                        SummationPooling, attention_block, summation_block)
from minisum.nn.init import keras_dense, torch_linear

pytestmark = pytest.mark.needs_engine  # every test here runs code of several tasks


def randn(*shape, seed=0):
    """A float64 leaf tensor that wants a gradient."""
    return minisum.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def check_layer(layer, *args):
    """Gradcheck `layer(*args)` with respect to its tensor arguments and all its parameters.

    Tolerance 1e-5: some entries (attention keys) have gradients near 1e-6, where the
    rounding noise of central differences reaches a relative 1e-6; a wrong formula is off by O(1).
    The key bias of attention is left out: adding the same q.b_k to every score of a row
    leaves the softmax unchanged, so its true gradient is 0 and there is nothing to compare;
    that it is 0 is checked instead.
    """
    params = dict(layer.named_parameters())
    key_biases = [p for name, p in params.items() if name.endswith("k_proj.bias")]
    others = [p for name, p in params.items() if not name.endswith("k_proj.bias")]
    gradcheck(lambda *_: layer(*args), *args, *others, tol=1e-5)
    for bias in key_biases:
        np.testing.assert_allclose(to_host(bias.grad), 0, atol=1e-12)


def relu(a):
    return np.maximum(a, 0)


def layer_norm_np(x, eps=1e-5):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)


def softmax_np(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention_np(mha, x, causal):
    """Multi-head attention written out head by head with NumPy."""
    def proj(lin, a):
        return a @ to_host(lin.weight).T + to_host(lin.bias)

    q, k, v = proj(mha.q_proj, x), proj(mha.k_proj, x), proj(mha.v_proj, x)
    H, T = mha.n_heads, x.shape[1]
    D = q.shape[-1] // H
    heads = []
    for h in range(H):
        cols = slice(h * D, (h + 1) * D)
        scores = q[:, :, cols] @ k[:, :, cols].transpose(0, 2, 1) / math.sqrt(D)  # (B, T, T)
        if causal:
            scores = np.where(np.triu(np.ones((T, T), dtype=bool), 1), -1e9, scores)
        heads.append(softmax_np(scores) @ v[:, :, cols])
    return proj(mha.out_proj, np.concatenate(heads, axis=-1))


# ---- gradient checks ----------------------------------------------------------------
# Linear, Embedding and LayerNorm are one op each: tests/test_gradcheck_ops.py checks those.


@pytest.mark.parametrize("relu_on", [True, False])
def test_dense_gradients(relu_on):
    layer = to_float64(Dense(4, 3, relu=relu_on))
    layer.bias.data = on_device(np.random.default_rng(1).standard_normal(3))  # Keras starts it at 0
    check_layer(layer, randn(5, 4))


def test_causal_summation_gradients():
    check_layer(to_float64(CausalSummation(4)), randn(2, 5, 4))


def test_summation_pooling_gradients():
    layer = to_float64(SummationPooling(seq_len=7, d_model=4))  # a table longer than the input
    check_layer(layer, randn(2, 5, 4))
    np.testing.assert_array_equal(to_host(layer.pos.grad)[5:], 0)  # unused positions get no gradient


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("head_dim", [None, 5])  # None: d / h = 3
def test_multi_head_attention_gradients(causal, head_dim):
    layer = to_float64(MultiHeadAttention(6, 2, head_dim=head_dim, causal=causal))
    check_layer(layer, randn(2, 4, 6))


@pytest.mark.parametrize("make", [lambda: summation_block(4), lambda: attention_block(4, 2)],
                         ids=["summation", "attention"])
def test_block_gradients(make):
    check_layer(to_float64(make()), randn(2, 4, 4))


# ---- forward formulas ---------------------------------------------------------------


def test_linear_forward_is_x_wt_plus_b():
    layer = Linear(3, 2)
    assert layer.weight.shape == (2, 3) and layer.bias.shape == (2,)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    expected = x @ to_host(layer.weight).T + to_host(layer.bias)
    np.testing.assert_allclose(to_host(layer(on_device(x))), expected, rtol=1e-6)


def test_causal_summation_forward_is_the_running_sum_of_projections():
    layer = to_float64(CausalSummation(4))
    x = randn(2, 5, 4)
    w = layer.state_dict()  # on the host
    p = relu(relu(to_host(x) @ w["proj.0.weight"].T) @ w["proj.2.weight"].T)
    expected = np.cumsum(p, axis=1) @ w["out_proj.weight"].T + w["out_proj.bias"]
    np.testing.assert_allclose(to_host(layer(x)), expected, rtol=1e-12)


def test_summation_pooling_forward_sums_modulated_projections():
    layer = to_float64(SummationPooling(seq_len=6, d_model=4, pos_bias=1.0))
    x = randn(2, 5, 4)
    modulated = to_host(x) * (to_host(layer.pos)[:5] + 1.0)
    expected = relu(modulated @ to_host(layer.dense.weight).T).sum(axis=1)
    np.testing.assert_allclose(to_host(layer(x)), expected, rtol=1e-12)


@pytest.mark.parametrize("causal", [True, False])
def test_multi_head_attention_forward_matches_per_head_numpy(causal):
    layer = to_float64(MultiHeadAttention(6, 2, head_dim=4, causal=causal))
    x = randn(2, 5, 6)
    np.testing.assert_allclose(to_host(layer(x)), attention_np(layer, to_host(x), causal), rtol=1e-10, atol=1e-12)


def test_block_is_post_norm_with_a_d_to_d_feed_forward():
    block = to_float64(summation_block(4))
    assert block.ff[0].weight.shape == (4, 4) and block.ff[2].weight.shape == (4, 4)
    x = randn(2, 5, 4)
    w = block.state_dict()  # on the host
    h = layer_norm_np(to_host(x) + to_host(block.mixer(x)))  # norm weights are 1 and 0 at init
    ff = relu(h @ w["ff.0.weight"].T + w["ff.0.bias"]) @ w["ff.2.weight"].T + w["ff.2.bias"]
    np.testing.assert_allclose(to_host(block(x)), layer_norm_np(h + ff), rtol=1e-9, atol=1e-12)


def test_dropout_scales_kept_values_in_training_and_is_identity_in_eval():
    minisum.seed(0)
    layer = Dropout(0.25)
    x = np.ones((200, 100), dtype=np.float32)
    y = to_host(layer(on_device(x)))
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01  # 20,000 draws: the standard error is 0.003
    layer.eval()
    np.testing.assert_array_equal(to_host(layer(on_device(x))), x)


# ---- initialisation -----------------------------------------------------------------


def test_parameters_are_float32_leaves():
    for p in summation_block(8).parameters():
        assert p.dtype == np.float32 and p.requires_grad and p.creator is None


def test_seed_makes_initialisation_reproducible():
    minisum.seed(3)
    a = CausalSummation(8).state_dict()
    minisum.seed(3)
    b = CausalSummation(8).state_dict()
    minisum.seed(4)
    c = CausalSummation(8).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["proj.0.weight"], c["proj.0.weight"])


def test_torch_linear_init_is_uniform_within_one_over_sqrt_fan_in():
    minisum.seed(0)
    weight, bias = torch_linear(300, 200)
    bound = 1 / math.sqrt(200)
    for values in (weight.data, bias.data):
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.95 * bound  # the whole range is used
    # uniform on [-b, b]: mean 0, variance b^2 / 3
    assert abs(weight.data.mean()) < 0.01 * bound
    assert abs(weight.data.var() / (bound ** 2 / 3) - 1) < 0.02


def test_torch_embedding_and_layer_norm_init():
    minisum.seed(0)
    table = Embedding(200, 100).weight.data  # 20,000 draws of N(0, 1)
    assert abs(table.mean()) < 0.03 and abs(table.std() - 1) < 0.03
    norm = LayerNorm(7)
    np.testing.assert_array_equal(to_host(norm.weight), 1)
    np.testing.assert_array_equal(to_host(norm.bias), 0)


def test_keras_dense_init_is_glorot_uniform_with_zero_bias():
    minisum.seed(0)
    weight, bias = keras_dense(100, 300)
    limit = math.sqrt(6 / (300 + 100))
    assert weight.shape == (100, 300)
    assert limit * 0.95 < np.abs(weight.data).max() <= limit
    assert abs(weight.data.var() / (limit ** 2 / 3) - 1) < 0.02
    np.testing.assert_array_equal(to_host(bias), 0)
    np.testing.assert_array_equal(to_host(Dense(3, 4).bias), 0)


def test_keras_embedding_init_is_uniform_within_0_05():
    minisum.seed(0)
    table = Embedding(200, 100, init_style="keras").weight.data
    assert 0.049 < np.abs(table).max() <= 0.05
    assert abs(table.std() - 0.05 / math.sqrt(3)) < 0.001


@pytest.mark.parametrize("positions", [
    lambda: SummationPooling(seq_len=256, d_model=64).pos,
    lambda: SummationClassifier(vocab_size=10, seq_len=256, d_model=64).summation.pos,
    lambda: AttentionClassifier(vocab_size=10, seq_len=256, d_model=64, head_dim=4).pos,
    lambda: AttentionFusionRegressor(vocab_size=10, seq_len=256, d_model=64).pos,
], ids=["pooling", "summation-classifier", "attention-classifier", "attention-regressor"])
def test_keras_positional_tables_are_normal_with_std_0_02(positions):
    minisum.seed(0)
    pos = positions().data  # 16,384 draws
    assert abs(pos.std() - 0.02) < 0.001 and abs(pos.mean()) < 0.001
