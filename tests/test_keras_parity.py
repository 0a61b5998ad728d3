"""minisum against Keras (skipped without Keras, which is not a dependency of minisum).

The reference's Keras models of docs/paper.md sections 2 and 3 are written here with Keras
layers (`pip install keras torch`: Keras 3 on the torch backend is enough). Weights are
copied from minisum, then the outputs, losses, gradients and three Adam steps (Keras'
epsilon placement; clipvalue 1.0 for the classifiers, none for the regressors) are compared
in float64. The initialisers are checked separately: Keras 2.12 (the reference's pin, which
needs TensorFlow) computes the attention kernels' Glorot fans with the `compute_fans` that
Keras 3 still has for shapes it is given without axes; Keras 3's own MultiHeadAttention
passes the axes.
"""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
os.environ["KERAS_BACKEND"] = "torch"  # read once, when Keras is first imported
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("Keras was imported with another backend before this file", allow_module_level=True)
from keras import layers, ops as kops  # noqa: E402
from keras.src.backend.common import dtypes as keras_dtypes  # noqa: E402
from keras.src.initializers.random_initializers import compute_fans  # noqa: E402

import minisum  # noqa: E402
from conftest import TEST_SEED, to_float64  # noqa: E402
from minisum import ops  # noqa: E402
from minisum.models import (AttentionClassifier, AttentionFusionRegressor, SummationClassifier,  # noqa: E402
                            SummationFusionRegressor)
from minisum.nn import MultiHeadAttention, init  # noqa: E402
from minisum.optim import KERAS_ADAM_EPS, AdamW, clip_grad_value  # noqa: E402

pytestmark = [pytest.mark.needs_engine,  # every test here runs code of several tasks
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]  # Keras' own NumPy conversions

VOCAB, SEQ, D, HEADS, KEY, BATCH, FEATURES = 40, 8, 16, 2, 8, 6, 4
LR = 1e-3
TOLERANCE = 1e-9  # float64 on both sides: round-off only


@pytest.fixture(autouse=True)
def on_the_host():
    """Keras computes on the host here, and so does minisum, whatever device the suite runs on."""
    minisum.set_device("cpu")


@pytest.fixture(autouse=True)
def keras_float64(monkeypatch):
    """Keras in float64. Its type promotion turns every 64-bit result into 32-bit (as JAX does
    by default; a matmul of two float64 arrays gives float32), so that rule is switched off."""
    monkeypatch.setattr(keras_dtypes, "BIT64_TO_BIT32_DTYPE", {})
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(previous)


# ---- the reference's Keras models -----------------------------------------------------

class PositionalSummation(layers.Layer):
    """The reference's summation layer: x * (pos + 1) -> Dense(relu, no bias) -> sum over T."""

    def __init__(self, seq_len, d):
        super().__init__()
        self.pos = self.add_weight(shape=(seq_len, d), initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.dense = layers.Dense(d, activation="relu", use_bias=False)

    def call(self, x):
        return kops.sum(self.dense(x * (self.pos + 1.0)), axis=1)


class PositionAdd(layers.Layer):
    def __init__(self, seq_len, d):
        super().__init__()
        self.pos = self.add_weight(shape=(seq_len, d), initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        return x + self.pos


def numeric_branches():
    return [keras.Sequential([layers.Dense(D, activation="relu"), layers.Dense(D, activation="relu")])
            for _ in range(FEATURES)]


def regression_head():
    return keras.Sequential([layers.Dense(256, activation="relu"), layers.Dense(64, activation="relu"),
                             layers.Dropout(0.2), layers.Dense(1)])


class KerasSummationClassifier(keras.Model):
    def __init__(self, units):
        super().__init__()
        self.embedding = layers.Embedding(VOCAB, D)
        self.summation = PositionalSummation(SEQ, D)
        self.head = layers.Dense(units, activation="sigmoid" if units == 1 else "softmax")

    def call(self, ids):
        return self.head(self.summation(self.embedding(ids)))


class KerasAttentionClassifier(keras.Model):
    def __init__(self, units):
        super().__init__()
        self.embedding = layers.Embedding(VOCAB, D)
        self.position = PositionAdd(SEQ, D)
        self.attention = layers.MultiHeadAttention(num_heads=HEADS, key_dim=KEY)
        self.head = layers.Dense(units, activation="sigmoid" if units == 1 else "softmax")

    def call(self, ids):
        x = self.position(self.embedding(ids))
        return self.head(kops.mean(self.attention(x, x), axis=1))


class KerasAttentionFusion(keras.Model):
    def __init__(self):
        super().__init__()
        self.embedding = layers.Embedding(VOCAB, D)
        self.position = PositionAdd(SEQ, D)
        self.attention = layers.MultiHeadAttention(num_heads=HEADS, key_dim=KEY)
        self.norm = layers.LayerNormalization()  # epsilon 1e-3
        self.branches = numeric_branches()
        self.head = regression_head()

    def call(self, ids, numbers, training=False):
        x = self.position(self.embedding(ids))
        text = kops.mean(self.norm(x + self.attention(x, x)), axis=1)
        parts = [branch(numbers[:, i:i + 1]) for i, branch in enumerate(self.branches)]
        return self.head(kops.concatenate([text] + parts, axis=1), training=training)


class KerasSummationFusion(keras.Model):
    def __init__(self):
        super().__init__()
        self.embedding = layers.Embedding(VOCAB, D)
        self.summation = PositionalSummation(SEQ, D)
        self.text_dense = layers.Dense(D, activation="relu")
        self.branches = numeric_branches()
        self.numeric = keras.Sequential([layers.Dense(D, activation="relu"), layers.Dense(D, activation="relu")])
        self.head = regression_head()

    def call(self, ids, numbers, training=False):
        text = self.text_dense(self.summation(self.embedding(ids)))
        numeric = sum(branch(numbers[:, i:i + 1]) for i, branch in enumerate(self.branches))
        return self.head(text + self.numeric(numeric), training=training)


# ---- moving weights: (minisum name, Keras variable, layout) ---------------------------

def dense_pairs(prefix, layer, bias=True):
    pairs = [(prefix + ".weight", layer.kernel, "transpose")]
    return pairs + [(prefix + ".bias", layer.bias, "same")] if bias else pairs


def attention_pairs(prefix, mha):
    pairs = []
    for name, dense in (("q_proj", mha.query_dense), ("k_proj", mha.key_dense), ("v_proj", mha.value_dense)):
        pairs += [(f"{prefix}.{name}.weight", dense.kernel, "transpose"),  # kernel (d, h, k)
                  (f"{prefix}.{name}.bias", dense.bias, "same")]  # bias (h, k)
    out = mha.output_dense
    return pairs + [(f"{prefix}.out_proj.weight", out.kernel, "transpose"),  # kernel (h, k, d)
                    (f"{prefix}.out_proj.bias", out.bias, "same")]


def sequential_pairs(prefix, model, minisum_index):
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    return [pair for i, layer in zip(minisum_index, dense) for pair in dense_pairs(f"{prefix}.{i}", layer)]


def branch_pairs(kmodel):
    return [pair for b, branch in enumerate(kmodel.branches) for pair in sequential_pairs(f"branches.{b}", branch, (0, 1))]


def classifier_pairs(kmodel):
    if isinstance(kmodel, KerasSummationClassifier):
        body = [("summation.pos", kmodel.summation.pos, "same")] + dense_pairs(
            "summation.dense", kmodel.summation.dense, bias=False)
    else:
        body = [("pos", kmodel.position.pos, "same")] + attention_pairs("attention", kmodel.attention)
    return [("embedding.weight", kmodel.embedding.embeddings, "same")] + body + dense_pairs("head", kmodel.head)


def regressor_pairs(kmodel):
    pairs = [("embedding.weight", kmodel.embedding.embeddings, "same")]
    if isinstance(kmodel, KerasAttentionFusion):
        pairs += [("pos", kmodel.position.pos, "same")] + attention_pairs("attention", kmodel.attention)
        pairs += [("norm.weight", kmodel.norm.gamma, "same"), ("norm.bias", kmodel.norm.beta, "same")]
        pairs += branch_pairs(kmodel)
    else:
        pairs += [("summation.pos", kmodel.summation.pos, "same")]
        pairs += dense_pairs("summation.dense", kmodel.summation.dense, bias=False)
        pairs += dense_pairs("text_dense", kmodel.text_dense) + branch_pairs(kmodel)
        pairs += sequential_pairs("numeric", kmodel.numeric, (0, 1))
    return pairs + sequential_pairs("head", kmodel.head, (0, 1, 3))


def to_keras_layout(array, variable, layout):
    """A minisum array in the shape of a Keras variable: Linear weights are stored (out, in),
    Keras kernels (in, out), the attention's (d, h, k) and (h, k, d)."""
    return (array.T if layout == "transpose" else array).reshape(variable.shape)


def numpy(x):
    return np.asarray(kops.convert_to_numpy(x), dtype=np.float64)


def copy_weights(model, kmodel, pairs):
    params = dict(model.named_parameters())
    assert sorted(params) == sorted(name for name, _, _ in pairs)  # every parameter, once
    assert len(kmodel.trainable_weights) == len(pairs)
    for name, variable, layout in pairs:
        variable.assign(to_keras_layout(params[name].data, variable, layout))


def relative(ours, theirs):
    """Worst difference over the largest value, over a list of arrays together: the key bias's
    gradient is zero in exact arithmetic, so its own round-off has no scale of its own."""
    ours, theirs = (np.concatenate([np.ravel(a) for a in arrays]) for arrays in (ours, theirs))
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def keras_step(kmodel, loss_fn, inputs, target, optimizer):
    """Loss and gradients of one batch, then one optimizer step: the torch backend's train_step."""
    kmodel.zero_grad()
    loss = loss_fn(target, kmodel(*inputs))
    loss.backward()
    variables = kmodel.trainable_weights
    grads = [v.value.grad.clone() for v in variables]
    with torch.no_grad():
        optimizer.apply(grads, variables)
    return float(numpy(loss)), grads


def compare(model, kmodel, pairs, minisum_loss, keras_loss, inputs, keras_inputs, target, clip):
    """Forward, loss and gradients, then three steps: worst relative difference of each."""
    params = dict(model.named_parameters())
    before = {name: params[name].data.copy() for name in params}
    optimizer = AdamW(model.parameters(), lr=LR, eps=KERAS_ADAM_EPS, eps_style="keras")
    koptimizer = keras.optimizers.Adam(learning_rate=LR, epsilon=KERAS_ADAM_EPS, clipvalue=clip)
    diffs = {}
    for step in range(3):
        out, loss = minisum_loss(model, *inputs, target)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            diffs["output"] = relative([out], [numpy(kmodel(*keras_inputs))])
        k_loss, k_grads = keras_step(kmodel, keras_loss, keras_inputs, target, koptimizer)
        if step == 0:
            diffs["loss"] = relative([loss.item()], [k_loss])
            diffs["gradients"] = relative([to_keras_layout(params[name].grad, v, layout) for name, v, layout in pairs],
                                          [numpy(g) for g in k_grads])
        if clip:
            clip_grad_value(model.parameters(), clip)
        optimizer.step()
    diffs["3 Adam steps (update)"] = relative(
        [to_keras_layout(params[name].data - before[name], v, layout) for name, v, layout in pairs],
        [numpy(v) - to_keras_layout(before[name], v, layout) for name, v, layout in pairs])
    return diffs


# ---- classifiers ------------------------------------------------------------------------

def classifier_loss(model, ids, labels):
    logits = model(minisum.tensor(ids))
    if logits.shape[1] == 1:
        loss = ops.binary_cross_entropy_with_logits(logits, labels.astype(np.float64)[:, None])
        return 1 / (1 + np.exp(-logits.data)), loss
    probs = np.exp(logits.data - logits.data.max(1, keepdims=True))
    return probs / probs.sum(1, keepdims=True), ops.cross_entropy(logits, labels)


@pytest.mark.parametrize("classes", [2, 5])
@pytest.mark.parametrize("name", ["summation", "attention"])
def test_classifier_matches_keras(name, classes):
    minisum.seed(TEST_SEED)
    units = 1 if classes == 2 else classes
    if name == "summation":
        model, kmodel = SummationClassifier(VOCAB, SEQ, D, classes), KerasSummationClassifier(units)
    else:
        model, kmodel = AttentionClassifier(VOCAB, SEQ, D, classes, HEADS, KEY), KerasAttentionClassifier(units)
    to_float64(model)
    rng = np.random.default_rng(TEST_SEED)
    ids = rng.integers(0, VOCAB, (BATCH, SEQ))
    ids[0, :3] = 0  # front padding, as pad_sequences leaves it
    labels = rng.integers(0, classes, BATCH)
    kmodel(ids)  # builds the variables
    pairs = classifier_pairs(kmodel)
    copy_weights(model, kmodel, pairs)
    keras_loss = (keras.losses.BinaryCrossentropy() if units == 1
                  else keras.losses.SparseCategoricalCrossentropy())
    target = labels[:, None].astype(np.float64) if units == 1 else labels
    diffs = compare(model, kmodel, pairs, lambda m, x, y: classifier_loss(m, x, labels), keras_loss,
                    (ids,), (ids,), target, clip=1.0)
    assert max(diffs.values()) < TOLERANCE, diffs


# ---- multimodal regressors ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["summation", "attention"])
def test_regressor_matches_keras(name):
    minisum.seed(TEST_SEED)
    if name == "summation":
        model, kmodel = SummationFusionRegressor(VOCAB, SEQ, D, FEATURES), KerasSummationFusion()
    else:
        model, kmodel = AttentionFusionRegressor(VOCAB, SEQ, D, FEATURES, HEADS, KEY), KerasAttentionFusion()
    to_float64(model).eval()  # dropout off on both sides
    rng = np.random.default_rng(TEST_SEED)
    ids = rng.integers(0, VOCAB, (BATCH, SEQ))
    ids[0, -3:] = 0  # end padding, as TextVectorization leaves it
    numbers = rng.uniform(0, 1, (BATCH, FEATURES))
    target = rng.uniform(0, 1, (BATCH, 1))
    kmodel(ids, numbers)
    pairs = regressor_pairs(kmodel)
    copy_weights(model, kmodel, pairs)

    def minisum_loss(m, x, n, y):
        pred = m(minisum.tensor(x), minisum.tensor(n))
        return pred.data, ops.mse_loss(pred, minisum.tensor(y))

    diffs = compare(model, kmodel, pairs, minisum_loss, keras.losses.MeanSquaredError(),
                    (ids, numbers), (ids, numbers), target, clip=None)
    assert max(diffs.values()) < TOLERANCE, diffs


# ---- initialisation -----------------------------------------------------------------------

@pytest.mark.parametrize("d, heads, key", [(256, 4, 256), (256, 4, 64)])  # classifier, regressor
def test_attention_init_bounds_are_keras_212s_and_keras_3s(d, heads, key):
    keras2_in, keras2_out = compute_fans((d, heads, key)), compute_fans((heads, key, d))
    assert init.keras2_fans((d, heads, key)) == keras2_in and init.keras2_fans((heads, key, d)) == keras2_out
    keras3 = layers.MultiHeadAttention(num_heads=heads, key_dim=key)
    x = np.zeros((1, 2, d))
    keras3(x, x)
    keras3_max = [np.abs(numpy(dense.kernel)).max() for dense in (keras3.query_dense, keras3.output_dense)]
    glorot = lambda fans: np.sqrt(6 / sum(fans))  # noqa: E731
    for style, (q_limit, out_limit) in {"keras": (glorot(keras2_in), glorot(keras2_out)),
                                        "keras3": (glorot((d, heads * key)), glorot((heads * key, d)))}.items():
        minisum.seed(TEST_SEED)
        mha = MultiHeadAttention(d, heads, head_dim=key, init_style=style)
        for weight, limit in ((mha.q_proj.weight, q_limit), (mha.out_proj.weight, out_limit)):
            assert limit * 0.999 < np.abs(weight.data).max() <= limit * (1 + 1e-6)  # 65k+ draws reach the bound
    # Keras 3's draws reach its own bound, which is minisum's "keras3" one
    np.testing.assert_allclose(keras3_max, [glorot((d, heads * key)), glorot((heads * key, d))], rtol=1e-3)
