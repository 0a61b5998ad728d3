"""The library refuses what PyTorch refuses: one table of bad calls, each with the exception
it must raise and a fragment of the message (the argument's name, the allowed range).

A TypeError for the wrong kind of value, a ValueError for a value out of range; the
message is one line. Then a few calls at the edge of each range that must still work.
"""
import math

import numpy as np
import pytest

import minisum
from conftest import on_device, to_host
from minisum import Tensor, ops, tensor
from minisum.callbacks import EarlyStopping, ReduceLROnPlateau
from minisum.models import (AttentionClassifier, AttentionFusionRegressor, LanguageModel, SummationClassifier,
                            SummationFusionRegressor)
from minisum.models.language_model import sample_token
from minisum.nn import CausalSummation, Dense, Dropout, Embedding, LayerNorm, Linear, MultiHeadAttention
from minisum.nn import SummationPooling
from minisum.optim import AdamW, clip_grad_norm, clip_grad_value
from minisum.ridge import ridge_fit

V = 7  # vocabulary of the small models below


def small_lm(**changes):
    config = dict(vocab_size=V, d_model=8, n_layers=2, n_heads=2, max_len=8, mixer="hybrid") | changes
    return LanguageModel(**config)


def weights():
    w = tensor(np.ones(3), requires_grad=True)
    w.grad = np.ones(3)
    return [w]


def generate(prompt=(1, 2), max_new_tokens=2, **options):
    return small_lm().generate(list(prompt) if isinstance(prompt, tuple) else prompt, max_new_tokens, **options)


def adamw(**hyper):
    return AdamW(weights(), **hyper)


LOGITS = np.array([0.1, 2.0, -1.0])
RNG = np.random.default_rng(0)

CASES = [
    # ----- token ids: integers in [0, V) -----------------------------------------------------
    ("embedding id -1", lambda: Embedding(5, 3)(np.array([[0, -1]])), ValueError,
     "embedding ids must be in [0, 5), got -1"),
    ("embedding id V", lambda: Embedding(5, 3)(np.array([1, 5])), ValueError, "embedding ids must be in [0, 5), got 5"),
    ("embedding id V in a list", lambda: Embedding(5, 3)([[0, 9]]), ValueError, "embedding ids must be in [0, 5)"),
    ("embedding float ids", lambda: Embedding(5, 3)(np.array([1.0, 2.0])), TypeError, "embedding ids must be integer"),
    ("embedding bool ids", lambda: Embedding(5, 3)(np.array([True])), TypeError, "embedding ids must be integer"),
    ("lm forward id V", lambda: small_lm()(np.array([[0, V]])), ValueError, f"embedding ids must be in [0, {V})"),
    ("lm loss id -1", lambda: small_lm().loss(np.array([[-1, 2]]), np.array([[1, 2]])), ValueError, "embedding ids"),
    ("prompt id V", lambda: generate(prompt=(1, V)), ValueError, f"prompt_ids must be in [0, {V}), got {V}"),
    ("prompt id -1", lambda: generate(prompt=(-1,)), ValueError, "prompt_ids must be in"),
    ("prompt float ids", lambda: generate(prompt=[1.5, 2.0]), TypeError, "prompt_ids must be integer ids"),
    ("prompt string", lambda: generate(prompt="hello"), ValueError, "prompt_ids must be a list or 1-D array"),
    ("prompt 2-D", lambda: generate(prompt=[[1, 2]]), ValueError, "prompt_ids must be a list or 1-D array"),
    # ----- sampling -----------------------------------------------------------------------------
    ("temperature -1", lambda: generate(temperature=-1), ValueError,
     "temperature must be a finite number >= 0, got -1"),
    ("temperature nan", lambda: generate(temperature=math.nan), ValueError, "temperature must be a finite number"),
    ("temperature inf", lambda: generate(temperature=math.inf), ValueError, "temperature must be a finite number"),
    ("temperature string", lambda: generate(temperature="hot"), TypeError, "temperature must be a finite number"),
    ("top_k 0", lambda: generate(top_k=0), ValueError, "top_k must be a positive integer, got 0"),
    ("top_k 2.5", lambda: generate(top_k=2.5), TypeError, "top_k must be a positive integer"),
    ("max_new_tokens -1", lambda: generate(max_new_tokens=-1), ValueError, "max_new_tokens must be an integer >= 0"),
    ("max_new_tokens 2.0", lambda: generate(max_new_tokens=2.0), TypeError, "max_new_tokens must be an integer >= 0"),
    ("temperature -1 with 0 new tokens", lambda: generate(max_new_tokens=0, temperature=-1), ValueError, "temperature"),
    ("sample_token temperature -0.5", lambda: sample_token(LOGITS, -0.5, None, RNG), ValueError, "temperature"),
    ("sample_token top_k 0", lambda: sample_token(LOGITS, 1.0, 0, RNG), ValueError, "top_k must be a positive"),
    # ----- AdamW ----------------------------------------------------------------------------------
    ("adamw lr nan", lambda: adamw(lr=math.nan), ValueError, "lr must be a finite number >= 0, got nan"),
    ("adamw lr inf", lambda: adamw(lr=math.inf), ValueError, "lr must be a finite number >= 0, got inf"),
    ("adamw lr -1e-3", lambda: adamw(lr=-1e-3), ValueError, "lr must be a finite number >= 0"),
    ("adamw lr string", lambda: adamw(lr="1e-3"), TypeError, "lr must be a finite number"),
    ("adamw beta1 1.0", lambda: adamw(betas=(1.0, 0.999)), ValueError, "betas[0] must be a finite number >= 0 and < 1"),
    ("adamw beta2 -0.1", lambda: adamw(betas=(0.9, -0.1)), ValueError, "betas[1] must be a finite number >= 0"),
    ("adamw beta2 nan", lambda: adamw(betas=(0.9, math.nan)), ValueError, "betas[1]"),
    ("adamw one beta", lambda: adamw(betas=(0.9,)), TypeError, "betas must be a pair"),
    ("adamw eps -1e-8", lambda: adamw(eps=-1e-8), ValueError, "eps must be a finite number >= 0"),
    ("adamw weight_decay nan", lambda: adamw(weight_decay=math.nan), ValueError, "weight_decay must be a finite"),
    ("adamw weight_decay -0.1", lambda: adamw(weight_decay=-0.1), ValueError,
     "weight_decay must be a finite number >= 0"),
    ("adamw no parameters", lambda: AdamW([]), ValueError, "empty parameter list"),
    # ----- tensors hold numbers ---------------------------------------------------------------------
    ("tensor of strings", lambda: tensor(["a", "b"]), TypeError, "tensor data must be numbers"),
    ("Tensor of a string array", lambda: Tensor(np.array(["x"])), TypeError, "tensor data must be numbers"),
    ("tensor of None", lambda: tensor(None), TypeError, "tensor data must be numbers"),
    ("tensor of objects", lambda: tensor(np.array([object()])), TypeError, "tensor data must be numbers"),
    # ----- sizes: positive integers, named -----------------------------------------------------------
    ("lm vocab_size 0", lambda: small_lm(vocab_size=0), ValueError, "vocab_size must be a positive integer, got 0"),
    ("lm vocab_size 10.0", lambda: small_lm(vocab_size=10.0), TypeError, "vocab_size must be a positive integer"),
    ("lm vocab_size True", lambda: small_lm(vocab_size=True), TypeError, "vocab_size must be a positive integer"),
    ("lm d_model -8", lambda: small_lm(d_model=-8), ValueError, "d_model must be a positive integer, got -8"),
    ("lm n_layers 0", lambda: small_lm(n_layers=0), ValueError, "n_layers must be a positive integer"),
    ("lm n_heads 0", lambda: small_lm(n_heads=0), ValueError, "n_heads must be a positive integer"),
    ("lm max_len 0", lambda: small_lm(max_len=0), ValueError, "max_len must be a positive integer"),
    ("Linear in_features 0", lambda: Linear(0, 3), ValueError, "in_features must be a positive integer"),
    ("Dense out_features 0", lambda: Dense(3, 0), ValueError, "out_features must be a positive integer"),
    ("Embedding num 0", lambda: Embedding(0, 4), ValueError, "num must be a positive integer"),
    ("LayerNorm dim 0", lambda: LayerNorm(0), ValueError, "dim must be a positive integer"),
    ("LayerNorm eps nan", lambda: LayerNorm(4, eps=math.nan), ValueError, "eps must be a finite number >= 0"),
    ("attention n_heads 0", lambda: MultiHeadAttention(8, 0), ValueError, "n_heads must be a positive integer"),
    ("attention head_dim 0", lambda: MultiHeadAttention(8, 2, head_dim=0), ValueError, "head_dim must be a positive"),
    ("summation d_model 0", lambda: CausalSummation(0), ValueError, "d_model must be a positive integer"),
    ("summation pooling seq_len 0", lambda: SummationPooling(0, 4), ValueError, "seq_len must be a positive integer"),
    ("Dropout p 1", lambda: Dropout(1.0), ValueError, "p must be a finite number >= 0 and < 1"),
    ("summation classifier vocab_size 0", lambda: SummationClassifier(vocab_size=0), ValueError, "vocab_size must be"),
    ("attention classifier n_classes 1", lambda: AttentionClassifier(n_classes=1), ValueError,
     "n_classes must be an integer >= 2, got 1"),
    ("summation regressor n_features 0", lambda: SummationFusionRegressor(100, n_features=0), ValueError,
     "n_features must be a positive integer"),
    ("attention regressor seq_len 0", lambda: AttentionFusionRegressor(100, seq_len=0), ValueError, "seq_len must be"),
    ("regressor dropout -0.1", lambda: SummationFusionRegressor(100, dropout=-0.1), ValueError, "dropout must be"),
    # ----- other public helpers that take numbers ---------------------------------------------------
    ("clip_grad_value nan", lambda: clip_grad_value(weights(), math.nan), ValueError, "clip must be a finite number"),
    ("clip_grad_value -1", lambda: clip_grad_value(weights(), -1.0), ValueError, "clip must be a finite number >= 0"),
    ("clip_grad_norm inf", lambda: clip_grad_norm(weights(), math.inf), ValueError, "max_norm must be a finite"),
    ("plateau factor 1", lambda: ReduceLROnPlateau(adamw(), factor=1.0), ValueError,
     "factor must be a finite number > 0 and < 1"),
    ("plateau patience -1", lambda: ReduceLROnPlateau(adamw(), patience=-1), ValueError, "patience must be an integer"),
    ("early stopping min_delta nan", lambda: EarlyStopping(Dense(2, 1), min_delta=math.nan), ValueError, "min_delta"),
    ("gradcheck eps 0", lambda: minisum.gradcheck(lambda x: x, weights()[0], eps=0.0), ValueError, "eps must be"),
    ("ridge alpha nan", lambda: ridge_fit(np.ones((3, 2)), np.ones(3), alpha=math.nan), ValueError, "alpha must be"),
]


@pytest.mark.parametrize("call, error, fragment", [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_bad_input_is_refused_with_one_line_naming_the_argument(call, error, fragment):
    with pytest.raises(Exception) as raised:
        call()
    assert type(raised.value) is error, f"{type(raised.value).__name__}: {raised.value}"
    message = str(raised.value)
    assert fragment in message
    assert "\n" not in message


# ----- the edges of each range still work -----------------------------------------------------------

@pytest.mark.needs_engine
def test_ids_zero_and_v_minus_one_are_read_from_their_rows():
    table = Embedding(V, 3)
    rows = to_host(table(on_device(np.array([[0, V - 1]], dtype=np.int32))))  # (1, 2, 3)
    np.testing.assert_array_equal(rows[0], to_host(table.weight)[[0, V - 1]])
    assert small_lm()(on_device([[0, V - 1]])).shape == (1, 2, V)


@pytest.mark.needs_engine
def test_temperature_zero_and_top_k_one_both_take_the_argmax():
    minisum.seed(0)
    model = small_lm()
    greedy = model.generate([1, V - 1], 4, temperature=0)
    assert model.generate([1, V - 1], 4, temperature=1.0, top_k=1, rng=np.random.default_rng(3)) == greedy
    assert model.generate([1, V - 1], 0) == [1, V - 1]
    assert sample_token(LOGITS, 0, None, RNG) == 1


@pytest.mark.needs_engine
def test_adamw_at_the_edges_of_its_ranges_runs_and_lr_zero_leaves_weights_alone():
    params = weights()
    optimizer = AdamW(params, lr=0.0, betas=(0.0, 0.0), eps=0.0, weight_decay=0.0)
    optimizer.step()
    np.testing.assert_array_equal(to_host(params[0]), np.ones(3))


def test_smallest_sizes_and_numpy_integers_are_accepted():
    model = small_lm(vocab_size=np.int64(1), d_model=1, n_layers=1, n_heads=1, max_len=1)
    assert model.token_embedding.weight.shape == (1, 1)
    classifier = AttentionClassifier(vocab_size=2, seq_len=1, d_model=1, n_classes=2, n_heads=1, head_dim=1)
    assert classifier.head.weight.shape == (1, 1)
    assert Dropout(0.0).p == 0.0
    assert ReduceLROnPlateau(adamw(), patience=0).patience == 0
    assert tensor([True, False]).dtype == np.bool_ and tensor([1, 2]).dtype.kind == "i"


def test_on_the_gpu_an_id_out_of_range_reads_a_nan_row_and_host_ids_are_still_checked():
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except Exception:
        pytest.skip("needs CuPy and a CUDA device")
    weight = Tensor(cupy.arange(10, dtype=cupy.float32).reshape(5, 2))
    rows = ops.embedding(weight, cupy.asarray([[0, 5, -1, 4]])).data.get()  # (1, 4, 2)
    np.testing.assert_array_equal(rows[0, [0, 3]], [[0, 1], [8, 9]])
    assert np.isnan(rows[0, [1, 2]]).all()
    with pytest.raises(ValueError, match=r"embedding ids must be in \[0, 5\), got 5"):
        ops.embedding(weight, [[0, 5]])
