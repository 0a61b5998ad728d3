"""Tests of causality, incremental (cached) evaluation and generation for the three LM variants.

All in float64 so that "the same logits" can mean 1e-8, not float32 rounding.
"""
import numpy as np
import pytest

import minisum
from conftest import on_device, to_float64, to_host
from minisum.models import LanguageModel
from minisum.models.language_model import sample_token

pytestmark = pytest.mark.needs_engine  # every test here runs code of several tasks

VARIANTS = ("attention", "summation", "hybrid")
V, T = 11, 9


def float64_lm(mixer, seed=0, n_layers=3):
    minisum.seed(seed)
    return to_float64(LanguageModel(vocab_size=V, d_model=8, n_layers=n_layers, n_heads=2, max_len=16, mixer=mixer))


def random_ids(shape, seed=0):
    return np.random.default_rng(seed).integers(0, V, shape)


def run(model, ids, *args, **kwargs):
    """The logits of host `ids`, fed on the device, back on the host."""
    return to_host(model(on_device(ids), *args, **kwargs))


@pytest.mark.parametrize("mixer", VARIANTS)
def test_future_tokens_never_change_past_logits(mixer):
    model = float64_lm(mixer)
    ids = random_ids((2, T))
    full = run(model, ids)
    for t in range(T - 1):
        changed = ids.copy()
        changed[:, t + 1:] = (changed[:, t + 1:] + 1 + np.arange(T - t - 1)) % V  # every later token differs
        logits = run(model, changed)
        np.testing.assert_allclose(logits[:, :t + 1], full[:, :t + 1], rtol=0, atol=1e-12)
        assert not np.allclose(logits[:, t + 1:], full[:, t + 1:])  # the change did reach the model


@pytest.mark.parametrize("mixer", VARIANTS)
def test_token_by_token_with_caches_equals_the_full_forward(mixer):
    model = float64_lm(mixer)
    ids = random_ids((2, T))
    full = run(model, ids)
    caches = model.new_caches()
    for t in range(T):
        step = run(model, ids[:, t:t + 1], caches, start=t)  # (2, 1, V)
        np.testing.assert_allclose(step[:, 0], full[:, t], rtol=0, atol=1e-8, err_msg=f"position {t}")


@pytest.mark.parametrize("mixer", VARIANTS)
def test_prompt_chunk_then_tokens_with_caches_equals_the_full_forward(mixer):
    model = float64_lm(mixer)
    ids = random_ids((2, T), seed=1)
    full = run(model, ids)
    caches = model.new_caches()
    np.testing.assert_allclose(run(model, ids[:, :4], caches), full[:, :4], rtol=0, atol=1e-8)
    np.testing.assert_allclose(run(model, ids[:, 4:6], caches, start=4), full[:, 4:6], rtol=0, atol=1e-8)
    for t in range(6, T):
        step = run(model, ids[:, t:t + 1], caches, start=t)
        np.testing.assert_allclose(step[:, 0], full[:, t], rtol=0, atol=1e-8, err_msg=f"position {t}")


def test_summation_state_stays_d_sized_while_the_attention_cache_grows():
    model = float64_lm("hybrid")  # layers 0, 1 summation, layer 2 attention
    caches = model.new_caches()
    ids = random_ids((1, T))
    for t in range(T):
        model(on_device(ids[:, t:t + 1]), caches, start=t)
    assert set(caches[0]) == {"sum"} and caches[0]["sum"].shape == (1, 8)
    assert caches[2]["k"].shape == caches[2]["v"].shape == (1, T, 8)


def greedy_by_full_forwards(model, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(np.argmax(run(model, np.array([ids]))[0, -1])))
    return ids


@pytest.mark.parametrize("mixer", VARIANTS)
def test_greedy_generation_equals_argmax_of_full_forwards(mixer):
    model = float64_lm(mixer)
    prompt = [3, 1, 4]
    generated = model.generate(prompt, max_new_tokens=10, temperature=0)
    assert generated == greedy_by_full_forwards(model, prompt, 10)
    assert generated[:3] == prompt and len(generated) == 13


def test_top_k_1_is_greedy_and_sampling_is_reproducible():
    model = float64_lm("hybrid")
    greedy = model.generate([2, 7], 8, temperature=0)
    assert model.generate([2, 7], 8, temperature=1.5, top_k=1, rng=np.random.default_rng(0)) == greedy
    first = model.generate([2, 7], 8, temperature=1.0, rng=np.random.default_rng(5))
    assert first == model.generate([2, 7], 8, temperature=1.0, rng=np.random.default_rng(5))
    assert all(0 <= i < V for i in first)


def test_generate_restores_the_training_mode_and_checks_lengths():
    model = float64_lm("summation")
    model.generate([1], 3, temperature=0)
    assert model.training and all(layer.training for layer in model.layers)
    model.eval()
    model.generate([1], 3, temperature=0)
    assert not model.training
    with pytest.raises(ValueError, match="exceeds the positional table of 16"):
        model.generate([1] * 10, 7)
    with pytest.raises(ValueError, match="at least one token"):
        model.generate([], 3)


def test_sample_token_follows_the_softmax_of_the_tempered_logits():
    logits = np.log(np.array([1.0, 2.0, 4.0, 1.0]))  # probabilities 1/8, 2/8, 4/8, 1/8
    rng = np.random.default_rng(0)
    draws = [sample_token(logits, 1.0, None, rng) for _ in range(8000)]
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 8000, [0.125, 0.25, 0.5, 0.125], atol=0.015)
    # temperature 2 takes square roots: weights 1, sqrt 2, 2, 1
    draws = [sample_token(logits, 2.0, None, rng) for _ in range(8000)]
    expected = np.array([1, np.sqrt(2), 2, 1]) / (4 + np.sqrt(2))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 8000, expected, atol=0.015)


def test_sample_token_top_k_keeps_only_the_k_largest():
    logits = np.array([0.0, 3.0, 1.0, 2.9, -1.0])
    rng = np.random.default_rng(0)
    draws = {sample_token(logits, 1.0, 2, rng) for _ in range(500)}
    assert draws == {1, 3}
    assert sample_token(logits, 0, None, rng) == 1
