"""Tests of checkpoints: what a round trip keeps, exact resumption, atomic writes, and a
clear UserError for every file that is not a checkpoint of this model."""
import os

import numpy as np
import pytest

import minisum
from conftest import on_device, to_host
from minisum.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from minisum.errors import UserError
from minisum.models import LanguageModel
from minisum.optim import AdamW
from minisum.training import lm_train_step

CONFIG = dict(vocab_size=13, d_model=8, n_layers=2, n_heads=2, max_len=10, mixer="hybrid")
BATCH = np.random.default_rng(0).integers(0, 13, (3, 9))


def assert_same_weights(a, b):
    """The two models have the same parameter names, and bit-identical values."""
    ours, theirs = a.state_dict(), b.state_dict()
    assert ours and ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def new_model(seed=0, **overrides):
    minisum.seed(seed)
    return LanguageModel(**{**CONFIG, **overrides})


def train_step(model, optimizer):
    lm_train_step(model, optimizer, on_device(BATCH[:, :-1]), on_device(BATCH[:, 1:]), pad_id=None)


def trained(steps=2):
    model = new_model()
    optimizer = AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    for _ in range(steps):
        train_step(model, optimizer)
    return model, optimizer


@pytest.mark.needs_engine
def test_round_trip_keeps_model_optimizer_config_and_step(tmp_path):
    model, optimizer = trained()
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, optimizer, config=CONFIG, step=2, extra={"epoch": 1})
    restored = new_model(seed=1)
    restored_opt = AdamW(restored.parameters())
    ckpt = load_checkpoint(path, restored, restored_opt)
    assert ckpt["config"] == CONFIG and ckpt["step"] == 2 and ckpt["extra"] == {"epoch": 1}
    assert_same_weights(model, restored)
    assert restored_opt.step_count == 2 and restored_opt.lr == 1e-2
    for i in range(len(optimizer.params)):
        np.testing.assert_array_equal(to_host(optimizer.m[i]), to_host(restored_opt.m[i]))
        np.testing.assert_array_equal(to_host(optimizer.v[i]), to_host(restored_opt.v[i]))


@pytest.mark.needs_engine
def test_resumed_training_is_bit_identical(tmp_path):
    model, optimizer = trained(steps=3)
    save_checkpoint(tmp_path / "ckpt.npz", model, optimizer, config=CONFIG, step=3)
    train_step(model, optimizer)  # the uninterrupted run

    resumed = new_model(seed=7)
    resumed_opt = AdamW(resumed.parameters(), lr=1e-2, weight_decay=0.01)
    load_checkpoint(tmp_path / "ckpt.npz", resumed, resumed_opt)
    train_step(resumed, resumed_opt)
    assert_same_weights(model, resumed)


def test_model_only_checkpoint(tmp_path):
    model = new_model()
    save_checkpoint(tmp_path / "sub" / "model.npz", model)  # creates the folder
    ckpt = read_checkpoint(tmp_path / "sub" / "model.npz")
    assert ckpt["optim"] == {} and ckpt["config"] == {} and ckpt["step"] == 0
    assert set(ckpt["model"]) == set(model.state_dict())


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="nowhere.npz does not exist"):
        load_checkpoint(tmp_path / "nowhere.npz", new_model())


def test_truncated_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, new_model(), config=CONFIG)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="ckpt.npz is unreadable.*truncated"):
        load_checkpoint(path, new_model())


def write_text(path):
    path.write_text("step,loss\n1,2.3\n")


def write_npy(path):
    """A single .npy array, not an .npz archive."""
    with open(path, "wb") as f:
        np.save(f, np.arange(3))


@pytest.mark.parametrize("write", [write_text, write_npy])
def test_file_that_is_not_an_npz(tmp_path, write):
    path = tmp_path / "ckpt.npz"
    write(path)
    with pytest.raises(UserError, match="ckpt.npz is unreadable.*not an .npz archive") as error:
        load_checkpoint(path, new_model())
    assert "pickle" not in str(error.value)  # NumPy's advice to load it unsafely is not passed on


def test_npz_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, weight=np.zeros(3))
    with pytest.raises(UserError, match="weights.npz has no 'config' entry"):
        load_checkpoint(path, new_model())


def test_checkpoint_of_another_model_shape(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, new_model(d_model=12), config=CONFIG)
    with pytest.raises(UserError, match=r"does not fit this model.*'token_embedding.weight' has shape \(13, 12\)"):
        load_checkpoint(path, new_model())


def test_checkpoint_of_another_variant(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, new_model(mixer="summation"))
    with pytest.raises(UserError, match=r"does not fit this model.*missing \['layers.1.k_proj.bias'"):
        load_checkpoint(path, new_model())


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, new_model(), config=CONFIG, step=1)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, new_model(seed=5), config=CONFIG, step=2)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind


def test_a_checkpoint_reaches_the_disk_before_and_after_its_rename(tmp_path, monkeypatch):
    """fsync of the new file before the rename (its data on the disk before the name points at
    it), then of the folder (the rename itself), as trusted checkpoint writers do."""
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(source, target):
        events.append(("rename", os.path.basename(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_checkpoint(tmp_path / "ckpt.npz", new_model(), config=CONFIG, step=1)
    assert events == [("fsync", "file"), ("rename", "ckpt.npz"), ("fsync", "folder")]


class RunsCodeWhenUnpickled:
    """Unpickling this creates a folder: the proof that a loader ran the file's code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_loading_never_unpickles(tmp_path):
    path, marker = tmp_path / "evil.npz", tmp_path / "code-ran"
    np.savez(path, config=np.asarray("{}"), step=np.asarray(0),
             payload=np.array([RunsCodeWhenUnpickled(marker)], dtype=object))
    with pytest.raises(UserError, match="evil.npz is unreadable"):
        load_checkpoint(path, new_model())
    assert not marker.exists()
