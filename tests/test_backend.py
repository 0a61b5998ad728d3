"""Tests of the array backend: device choice, CuPy errors, NumPy/CuPy mixing, scatter_add.

This machine may or may not have CuPy, so the tests decide for themselves: a None entry in
sys.modules makes `import cupy` fail, and a fake `cupy` module stands in for a real one.
`monkeypatch` puts the module's device back after each test.
"""
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import minisum
from minisum import Tensor, UserError, backend, ops


@pytest.fixture
def no_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError
    monkeypatch.setattr(backend, "_device", None)
    monkeypatch.delenv("MINISUM_DEVICE", raising=False)


def fake_cupy(device_count):
    """A stand-in `cupy` module that reports `device_count` CUDA devices, with an array class."""
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: device_count))

    class ndarray:
        shape, dtype = (2,), np.dtype(np.float32)

    ndarray.__module__ = "cupy"  # what `is_cupy_array` looks at, as for real CuPy arrays
    cupy.ndarray = ndarray
    return cupy


def test_asking_for_the_gpu_without_cupy_says_how_to_install_it(no_cupy):
    with pytest.raises(UserError, match=r"CuPy is not installed.*pip install cupy-cuda12x"):
        minisum.set_device("gpu")
    assert minisum.get_device() == "cpu"  # the failed request changed nothing


def test_asking_for_the_gpu_when_cupy_finds_no_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(device_count=0))
    monkeypatch.setattr(backend, "_device", None)
    with pytest.raises(UserError, match="no CUDA device"):
        minisum.set_device("cuda")


def test_gpu_is_chosen_when_cupy_finds_a_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(device_count=1))
    monkeypatch.setattr(backend, "_device", None)
    assert minisum.set_device("GPU") == "gpu"
    assert minisum.get_device() == "gpu"


def test_unknown_device_is_a_user_error(no_cupy):
    with pytest.raises(UserError, match=r"unknown device 'tpu'.*'cpu' or 'gpu'"):
        minisum.set_device("tpu")


@pytest.mark.parametrize("name", ["cpu", "CPU", "numpy"])
def test_cpu_names(name, no_cupy):
    assert minisum.set_device(name) == "cpu"
    assert minisum.get_device() == "cpu"


def test_device_comes_from_minisum_device_the_first_time_it_is_asked(monkeypatch, no_cupy):
    monkeypatch.setenv("MINISUM_DEVICE", "gpu")
    with pytest.raises(UserError, match="CuPy is not installed"):
        minisum.get_device()
    monkeypatch.setenv("MINISUM_DEVICE", "tpu")
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        minisum.get_device()
    monkeypatch.setenv("MINISUM_DEVICE", "CPU")
    assert minisum.get_device() == "cpu"


def test_device_defaults_to_cpu(no_cupy):
    assert minisum.get_device() == "cpu"


def test_mixing_numpy_and_cupy_arrays_is_an_error(monkeypatch):
    cupy = fake_cupy(device_count=1)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    assert backend.get_array_module(cupy.ndarray(), cupy.ndarray()) is cupy
    assert backend.get_array_module(np.ones(2), 3.0) is np
    with pytest.raises(TypeError, match="cannot mix NumPy and CuPy arrays"):
        ops.add(Tensor(np.ones(2, dtype=np.float32)), Tensor(cupy.ndarray()))


def test_cpu_arrays_stay_numpy_and_to_numpy_always_copies(no_cupy):
    a = np.arange(3.0)
    assert backend.to_device(a, "cpu") is a  # already there
    copy = backend.to_numpy(a)
    copy[0] = 9.0  # the caller owns it: the original is untouched
    assert a[0] == 0.0
    assert backend.device_module("cpu") is np


def test_seed_repeats_parameter_draws_and_dropout_masks(no_cupy):
    x = Tensor(np.ones((20, 20), dtype=np.float32))
    minisum.seed(7)
    first = backend.host_rng().random(3), ops.dropout(x, 0.5, training=True).data
    minisum.seed(7)
    second = backend.host_rng().random(3), ops.dropout(x, 0.5, training=True).data
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.parametrize("n,vocab", [(50, 6), (1, 4), (7, 1)])
def test_scatter_add_matches_numpy_add_at_with_repeated_indices(n, vocab, rng):
    indices = rng.integers(0, vocab, size=n)
    values = rng.standard_normal((n, 3))
    target = rng.standard_normal((vocab, 3))  # adds to what is there
    expected = target.copy()
    np.add.at(expected, indices, values)
    result = backend.scatter_add(target, indices, values)
    assert result is target
    np.testing.assert_allclose(target, expected, rtol=1e-12, atol=1e-12)


def test_scatter_add_with_no_indices_changes_nothing():
    target = np.ones((3, 2))
    backend.scatter_add(target, np.array([], dtype=np.int64), np.zeros((0, 2)))
    np.testing.assert_array_equal(target, np.ones((3, 2)))


def test_importing_minisum_loads_no_heavy_or_optional_module():
    code = ("import minisum, sys; "
            "print(sorted(m for m in ('datasets','tokenizers','matplotlib','cupy','torch') if m in sys.modules))")
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
