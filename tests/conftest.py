"""Shared test helpers: random float64 tensors from a generator seeded afresh for every test.

The seed is 0 unless MINISUM_TEST_SEED says otherwise: the autograder (tools/grade.py --seed)
changes it, and with it the values, some shapes (`vary`) and gradcheck's upstream gradient,
so that code tuned to the visible inputs fails.
"""
import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest

from minisum import Tensor

TEST_SEED = int(os.environ.get("MINISUM_TEST_SEED", "0"))

# Tests never reach the network nor the user's Hugging Face cache, and draw to files only.
# Set here, before any test imports `datasets` (which reads these once); subprocesses inherit them.
_EMPTY_HF_HOME = tempfile.mkdtemp(prefix="minisum-tests-hf-")
atexit.register(shutil.rmtree, _EMPTY_HF_HOME, True)
os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg", HF_HOME=_EMPTY_HF_HOME)


def to_float64(module):
    """The module with its parameters cast to float64, for gradient checks."""
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module


def shape_id(shape):
    """A readable test id for a shape: (3, 4) -> "3x4", () -> "0d"."""
    return "x".join(map(str, shape)) or "0d"


def vary(size, most=6):
    """`size` under seed 0 (the tests a student sees); under a grading seed a larger size drawn
    from it, size + 1 to size + most: longer sequences, larger vocabularies than the visible ones."""
    if TEST_SEED == 0:
        return size
    return size + int(np.random.default_rng([TEST_SEED, size]).integers(1, most + 1))


def task_marks(graded, *also):
    """The marks of `@task(graded, *also)` for one parameter: pytest.param(..., marks=task_marks("1.5"))."""
    return [pytest.mark.task(graded)] + [pytest.mark.task(task_id) for task_id in also]


def task(graded, *also):
    """Mark a test as grading assignment task `graded` (tools/grade.py) and as running the
    code of the tasks in `also` too, so that a handout without any of them fails it."""
    def mark(test):
        test = pytest.mark.task(graded)(test)  # applied first: the mark nearest the test
        for task_id in also:
            test = pytest.mark.task(task_id)(test)
        return test
    return mark


@pytest.fixture
def rng():
    """A NumPy generator with the same seed in every test, so each test is reproducible on its own."""
    return np.random.default_rng(TEST_SEED)


@pytest.fixture
def rand(rng):
    """rand(*shape) -> a float64 leaf tensor that requires grad, standard normal entries.

    positive=True draws from [0.5, 2] instead (for log, division, fractional powers);
    away_from_zero=True keeps every |entry| >= 0.2 (for relu, whose kink would spoil finite differences).
    """
    def make(*shape, positive=False, away_from_zero=False, requires_grad=True):
        if positive:
            data = rng.uniform(0.5, 2.0, shape)
        else:
            data = rng.standard_normal(shape)
        if away_from_zero:
            data = np.where(data >= 0, 1.0, -1.0) * (0.2 + np.abs(data))
        return Tensor(data, requires_grad=requires_grad)
    return make
