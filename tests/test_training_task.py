"""Task 5.2: a hybrid language model trained with lm_train_step learns a toy language."""
import math

import numpy as np
import pytest

import minisum
from conftest import TEST_SEED, on_device, task, to_host, vary
from minisum.models import LanguageModel
from minisum.optim import AdamW
from minisum.training import lm_train_step

pytestmark = pytest.mark.needs_engine  # every test here runs code of several tasks

PAD = 0


def toy_batch(rng, vocab=12, batch=4, length=10):
    """Sequences counting upward modulo the vocabulary (ids 1..vocab-1), the last two padded:
    each next token is determined by the current one, so a model can learn it exactly."""
    starts = rng.integers(1, vocab, size=(batch, 1))
    ids = (starts + np.arange(length)) % (vocab - 1) + 1
    ids[:, -2:] = PAD
    return on_device(ids[:, :-1]), on_device(ids[:, 1:])


@task("5.2", weight=4)
def test_a_hybrid_model_learns_the_toy_language():
    minisum.seed(TEST_SEED)
    rng = np.random.default_rng(TEST_SEED)
    model = LanguageModel(vocab_size=12, d_model=16, n_layers=2, n_heads=2, max_len=16, mixer="hybrid")
    optimizer = AdamW(model.parameters(), lr=1e-2)
    losses = []
    for step in range(150):
        before = to_host(model.output_projection.weight.data).copy()
        losses.append(lm_train_step(model, optimizer, *toy_batch(rng), pad_id=PAD)[0].item())
        after = to_host(model.output_projection.weight.data)
        assert not np.array_equal(before, after), f"step {step + 1} moved nothing"
    assert abs(losses[0] - math.log(12)) < 1.0  # starts near chance
    assert np.mean(losses[-10:]) < 0.1  # ends knowing the successor of every token


@task("5.2", weight=2)
def test_the_step_ignores_padding_targets():
    minisum.seed(TEST_SEED)
    model = LanguageModel(vocab_size=12, d_model=8, n_layers=1, n_heads=2, max_len=16, mixer="hybrid")
    inputs, targets = toy_batch(np.random.default_rng(TEST_SEED))
    all_pad = np.full_like(targets, PAD)
    before = model.state_dict()
    loss, hits = lm_train_step(model, AdamW(model.parameters(), lr=1e-2), inputs, all_pad, pad_id=PAD)
    assert loss.item() == 0.0 and int(hits) == 0  # nothing to predict
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # zero gradients move nothing


@task("5.2", weight=2)
def test_the_step_drops_the_old_gradients_before_the_forward_pass_and_releases_its_graph(monkeypatch):
    # Memory at the paper's size: the old gradients (230 MB) must not coexist with the new
    # forward's activations, and the activations go during backward.
    minisum.seed(TEST_SEED)
    model = LanguageModel(vocab_size=12, d_model=8, n_layers=1, n_heads=2, max_len=16, mixer="summation")
    optimizer = AdamW(model.parameters(), lr=1e-2)
    inputs, targets = toy_batch(np.random.default_rng(TEST_SEED))
    lm_train_step(model, optimizer, inputs, targets, pad_id=PAD)  # every parameter has a gradient now
    grads_at_forward = []
    real_loss = model.loss

    def spying_loss(*args):
        grads_at_forward.extend(p.grad for p in model.parameters())
        return real_loss(*args)
    monkeypatch.setattr(model, "loss", spying_loss)
    loss, _ = lm_train_step(model, optimizer, inputs, targets, pad_id=PAD)
    assert grads_at_forward and all(g is None for g in grads_at_forward)
    with pytest.raises(RuntimeError, match="released"):
        loss.backward()


def parameters(model):
    return {name: to_host(p.data).copy() for name, p in model.named_parameters()}


@task("5.2", weight=4)
@pytest.mark.parametrize("mixer", ["summation", "attention"])
def test_every_step_returns_the_loss_before_it_and_moves_every_parameter(mixer):
    minisum.seed(TEST_SEED)
    rng = np.random.default_rng(TEST_SEED + 1)
    model = LanguageModel(vocab_size=12, d_model=8, n_layers=1, n_heads=2, max_len=16, mixer=mixer)
    optimizer = AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(vary(25, most=15)):
        inputs, targets = toy_batch(rng)
        with minisum.no_grad():
            expected_loss, expected_hits = model.loss(inputs, targets, PAD)  # computed here, before the step
        before = parameters(model)
        loss, hits = lm_train_step(model, optimizer, inputs, targets, pad_id=PAD)
        assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-6), "not the loss of this batch"
        assert int(hits) == int(expected_hits)
        after = parameters(model)
        unmoved = [name for name in before if np.array_equal(before[name], after[name])]
        assert not unmoved, f"step {len(losses) + 1} left {unmoved[0]} as it was"
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < losses[0] - 0.5  # learning, not only moving
