"""The GPU path without a GPU: minisum on the strict CuPy emulation (tests/cupy_emulation).

These run in every suite: `emulated_gpu()` makes the emulation the device for one block.
Besides refusing what CuPy refuses, the emulation counts what makes a GPU wait: host
synchronisations (the host reads a device value) and host-to-device copies. A training step
should do neither: the GPU then runs ahead while Python queues the next step.
"""
import gzip
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import emulated_gpu, to_host
from minisum import Tensor, backend, ops
from minisum.models import LanguageModel, SummationClassifier, SummationFusionRegressor
from minisum.optim import AdamW
from minisum.training import lm_train_step

pytestmark = pytest.mark.needs_engine  # every test here runs code of several tasks


# ----- the emulation refuses what CuPy refuses ----------------------------------------------
def test_the_emulation_refuses_implicit_conversion_and_mixing_with_host_arrays():
    with emulated_gpu() as cupy:
        x, host = cupy.arange(6.0).reshape(2, 3), np.ones((2, 3))
        for mix in (lambda: np.asarray(x), lambda: x + host, lambda: host * x, lambda: cupy.exp(host),
                    lambda: cupy.concatenate([x, host]), lambda: cupy.add(x, 1.0, out=host),
                    lambda: x.__iadd__(host), lambda: np.testing.assert_array_equal(x, 0)):
            with pytest.raises(TypeError):
                mix()
        with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
            x[:] = host
        assert not hasattr(cupy, "nditer")  # NumPy has it, CuPy does not
        assert type(x.sum()) is cupy.ndarray and x.sum().shape == ()  # reductions stay on the device
        np.testing.assert_array_equal(x.get(), np.arange(6.0).reshape(2, 3))


def test_the_emulation_counts_host_syncs_and_copies_to_the_device():
    with emulated_gpu() as cupy:
        counts = cupy._emulation.counts
        x = cupy.asarray(np.arange(4.0))  # a copy
        total = (x * 2.0 + cupy.ones(4)).sum()  # device work only
        assert (counts.syncs, counts.to_device) == (0, 1)
        float(total), total.item(), x.get(), x[x > 1]  # the last: its length depends on the data
        assert (counts.syncs, counts.to_device) == (4, 1)


# ----- Tensor and device arrays -------------------------------------------------------------
def test_an_array_on_the_left_of_an_operator_defers_to_the_tensor():
    t = Tensor(np.ones(3, dtype=np.float32))
    assert isinstance(np.arange(3, dtype=np.float32) * t, Tensor)
    with emulated_gpu() as cupy:
        t = Tensor(cupy.ones(3, dtype=np.float32), requires_grad=True)
        x = cupy.arange(3, dtype=np.float32)
        for y in (x * t, x + t, x - t, x / (t + 1.0), x @ t):
            assert isinstance(y, Tensor) and backend.is_cupy_array(y.data)
        np.testing.assert_array_equal(to_host(x - t), [-1.0, 0.0, 1.0])


def test_a_host_gradient_for_a_device_tensor_is_moved_to_the_device():
    with emulated_gpu() as cupy:
        x = Tensor(cupy.ones(3), requires_grad=True)
        (x * 2.0).backward(np.array([1.0, 2.0, 3.0]))
        assert backend.is_cupy_array(x.grad)
        np.testing.assert_array_equal(to_host(x.grad), [2.0, 4.0, 6.0])
        x.grad = np.array([1.0, -1.0, 0.0])  # as a user might set it before an optimizer step
        assert backend.is_cupy_array(x.grad)
        AdamW([x], lr=0.1).step()
        np.testing.assert_allclose(to_host(x), [0.9, 1.1, 1.0], rtol=1e-6)


def test_to_numpy_of_a_device_array_is_a_host_copy():
    with emulated_gpu() as cupy:
        a = cupy.arange(3.0)
        host = backend.to_numpy(a)
        assert type(host) is np.ndarray
        host[0] = 9.0
        assert a[0].item() == 0.0


# ----- what a training step costs the GPU ----------------------------------------------------
def per_step(step, cupy, steps=3):
    """Host syncs and host-to-device copies per call of step(), after one warm-up call (which
    makes the optimizer state), and where they happened."""
    step()
    counts = cupy._emulation.counts
    counts.reset()
    for _ in range(steps):
        step()
    return counts.syncs / steps, counts.to_device / steps, dict(counts.where)


def lm_step(mixer, cupy):
    backend.seed(0)
    model = LanguageModel(vocab_size=50, d_model=16, n_layers=2, n_heads=2, max_len=12, mixer=mixer)
    optimizer = AdamW(model.parameters(), lr=1e-3)
    ids = cupy.asarray(np.random.default_rng(0).integers(0, 50, (4, 13)))  # the batch, on the device
    return lambda: lm_train_step(model, optimizer, ids[:, :-1], ids[:, 1:], pad_id=0)


def classifier_step(n_classes, cupy):
    backend.seed(0)
    model = SummationClassifier(vocab_size=30, seq_len=10, d_model=8, n_classes=n_classes)
    optimizer = AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    ids = cupy.asarray(rng.integers(0, 30, (4, 10)))
    if n_classes == 2:
        labels = cupy.asarray(rng.integers(0, 2, (4, 1)).astype(np.float32))
        loss_fn = ops.binary_cross_entropy_with_logits
    else:
        labels, loss_fn = cupy.asarray(rng.integers(0, n_classes, 4)), ops.cross_entropy
    return lambda: train_step(model, optimizer, lambda: loss_fn(model(ids), labels))


def regressor_step(cupy):
    backend.seed(0)
    model = SummationFusionRegressor(vocab_size=30, seq_len=10, d_model=8)
    optimizer = AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    ids, numbers = cupy.asarray(rng.integers(0, 30, (4, 10))), cupy.asarray(rng.random((4, 4), dtype=np.float32))
    target = cupy.asarray(rng.random((4, 1), dtype=np.float32))
    return lambda: train_step(model, optimizer, lambda: ops.mse_loss(model(ids, numbers), target))


def train_step(model, optimizer, loss_fn):
    loss = loss_fn()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


STEPS = {**{f"lm_train_step {mixer}": (lambda cupy, mixer=mixer: lm_step(mixer, cupy))
            for mixer in ("attention", "summation", "hybrid")},
         "binary classifier": lambda cupy: classifier_step(2, cupy),
         "4-class classifier": lambda cupy: classifier_step(4, cupy),
         "fusion regressor": regressor_step}


@pytest.mark.parametrize("name", STEPS)
def test_a_training_step_copies_nothing_to_the_device(name):
    with emulated_gpu() as cupy:
        _, copies, where = per_step(STEPS[name](cupy), cupy)
    assert copies == 0, f"host-to-device copies per step: {copies}, at {where}"


@pytest.mark.parametrize("name", STEPS)
def test_a_training_step_never_waits_for_the_device(name):
    with emulated_gpu() as cupy:
        syncs, _, where = per_step(STEPS[name](cupy), cupy)
    assert syncs == 0, f"host syncs per step: {syncs}, at {where}"


# ----- the same for the three training scripts, run in-process on the emulated GPU -----------
ROOT = Path(__file__).resolve().parents[1]
LM_ARGS = ["--data-dir", str(ROOT / "tests" / "fixtures" / "lm"), "--tokenizer", "bpe:300", "--d-model", "16",
           "--layers", "2", "--heads", "2", "--context", "32", "--batch-size", "4", "--train-samples", "16",
           "--valid-samples", "8", "--epochs", "2", "--models", "hybrid"]
MM_ARGS = ["--data-file", str(ROOT / "tests" / "fixtures" / "mm" / "synthetic_200.csv"), "--seq-len", "16",
           "--d-model", "8", "--head-dim", "4", "--max-tokens", "50", "--epochs", "2", "--batch-size", "32"]
CLS_ARGS = ["--dataset", "imdb", "--vocab-size", "50", "--seq-len", "16", "--d-model", "8", "--heads", "2",
            "--head-dim", "4", "--batch-size", "2", "--epochs", "2"]


def write_imdb(folder):
    texts = ["a good, good film", "bad acting", "good fun", "so bad", "good", "bad!", "very good", "too bad"]
    folder.mkdir()
    for name in ("train", "test"):
        with gzip.open(folder / f"{name}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": text, "label": int("good" in text)}) + "\n" for text in texts)
    return folder


def script_traffic_per_step(main, argv, monkeypatch):
    """Median host syncs and copies between consecutive optimizer steps of a whole run: the
    cost of a training step (the intervals that hold an evaluation are the few largest)."""
    marks = []
    step = AdamW.step

    def counting_step(self):
        marks.append((counts.syncs, counts.to_device))
        step(self)
    monkeypatch.setattr(AdamW, "step", counting_step)
    with emulated_gpu() as cupy:
        counts = cupy._emulation.counts
        main(argv + ["--device", "gpu"])
    intervals = np.diff(np.array(marks), axis=0)  # (steps - 1, 2)
    return tuple(float(v) for v in np.median(intervals, axis=0))


@pytest.mark.parametrize("script", ["train_lm", "train_cls", "train_mm"])
def test_a_training_script_syncs_at_most_once_per_step(script, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    module = importlib.import_module(script)
    argv = {"train_lm": LM_ARGS, "train_mm": MM_ARGS,
            "train_cls": CLS_ARGS + ["--data-dir", str(write_imdb(tmp_path / "imdb"))]}[script]
    syncs, copies = script_traffic_per_step(module.main, argv + ["--out-dir", str(tmp_path / "out")], monkeypatch)
    assert syncs == 0 and copies <= 1, f"{script}: per step {syncs} host syncs, {copies} copies to the device"
