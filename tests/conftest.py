"""Shared test helpers: random float64 tensors from a generator seeded afresh for every test.

The seed is 0 unless `--seed N` (or MINISUM_TEST_SEED) says otherwise: the autograder
(tools/grade.py --seed) changes it, and with it the values, some shapes (`vary`) and gradcheck's
upstream gradient, so that code tuned to the visible inputs fails. `pytest --seed N` replays
what the grader saw at seed N.

`--task 2.2` keeps the tests graded under task 2.2 (the grader's selection). In a weekly
handout, the tests of tasks not released yet (and those that need the whole engine) are
skipped, saying why: `python -m pytest -q` is green once the released tasks are done.

`--device` (or MINISUM_TEST_DEVICE) picks the device the suite runs on: cpu (default), gpu
(real CuPy), or emulated-gpu (tests/cupy_emulation, a strict NumPy-backed CuPy that refuses
implicit host/device conversion and counts host syncs). Tests build their inputs on that
device with `on_device` and compare on the host with `to_host`.
"""
import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from minisum import Tensor, backend

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.course import POINTS  # noqa: E402
from tools.task_markers import MarkerError, task_order, unreleased_tasks  # noqa: E402


TEST_SEED = 0  # pytest_configure sets it from --seed or MINISUM_TEST_SEED, before any test module imports it

# Tests never reach the network nor the user's Hugging Face cache, and draw to files only.
# Set here, before any test imports `datasets` (which reads these once); subprocesses inherit them.
_EMPTY_HF_HOME = tempfile.mkdtemp(prefix="minisum-tests-hf-")
atexit.register(shutil.rmtree, _EMPTY_HF_HOME, True)
os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg", HF_HOME=_EMPTY_HF_HOME)


EMULATION_DIR = Path(__file__).resolve().parent / "cupy_emulation"
DEVICES = ("cpu", "gpu", "emulated-gpu")


def pytest_addoption(parser):
    parser.addoption("--device", choices=DEVICES, default=os.environ.get("MINISUM_TEST_DEVICE", "cpu"),
                     help="run the suite on this device (default: $MINISUM_TEST_DEVICE or cpu)")
    parser.addoption("--seed", type=int, default=None,
                     help="seed of the hidden variation, as tools/grade.py --seed (default: $MINISUM_TEST_SEED or 0)")
    parser.addoption("--task", metavar="X.Y", help="run only the tests graded under this task (tools/grade.py --tasks)")


def pytest_configure(config):
    global TEST_SEED
    chosen = config.getoption("--task")
    if chosen and chosen not in POINTS:
        raise pytest.UsageError(f"--task {chosen}: no such task; the tasks are {', '.join(POINTS)}")
    given = config.getoption("--seed")
    value = str(given) if given is not None else os.environ.get("MINISUM_TEST_SEED", "0")
    try:
        TEST_SEED = int(value)
        if TEST_SEED < 0:  # NumPy's generators take no negative seed
            raise ValueError(value)
    except ValueError:
        where = "--seed" if given is not None else "MINISUM_TEST_SEED"
        raise pytest.UsageError(f"{where} {value!r}: a seed is a whole number from 0 "
                                "(unset MINISUM_TEST_SEED or use --seed N)") from None
    if given is not None:
        os.environ["MINISUM_TEST_SEED"] = value  # the scripts and pytests the tests start
    device = config.getoption("--device")
    if device == "emulated-gpu":
        install_emulation()
    # Scripts the tests start follow; a pytest they start (the autograder's) runs on the CPU,
    # where the assignment's code runs (on a GPU some ops take CuPy's kernels instead).
    os.environ["MINISUM_DEVICE"] = "cpu" if device == "cpu" else "gpu"
    backend.set_device(os.environ["MINISUM_DEVICE"])


def install_emulation():
    """Make `import cupy` / `import cupyx` load the emulation, here and in subprocesses."""
    sys.path.insert(0, str(EMULATION_DIR))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EMULATION_DIR), os.environ.get("PYTHONPATH")]))
    for name in [m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx")]:
        del sys.modules[name]


def graded_task(item):
    """The task a test is graded under (its nearest `task` mark), or None."""
    mark = item.get_closest_marker("task")
    return str(mark.args[0]) if mark else None


def pytest_collection_modifyitems(config, items):
    chosen = config.getoption("--task")
    if chosen:
        kept = [item for item in items if graded_task(item) == chosen]
        config.hook.pytest_deselected(items=[item for item in items if graded_task(item) != chosen])
        items[:] = kept
    try:
        unreleased = unreleased_tasks(ROOT)
    except MarkerError as err:  # a broken marker: say so, and run every test (the grader reports it too)
        config.issue_config_time_warning(pytest.PytestConfigWarning(f"{err}: no test is skipped as not released"), 2)
        return
    if not unreleased:
        return
    first = min(unreleased, key=task_order)
    for item in items:
        later = sorted({str(m.args[0]) for m in item.iter_markers("task")} & unreleased, key=task_order)
        if later:
            item.add_marker(pytest.mark.skip(reason=f"task {later[0]} is not released yet"))
        elif item.get_closest_marker("needs_engine"):
            item.add_marker(pytest.mark.skip(reason=f"needs the whole engine: task {first} is not released yet"))


@pytest.fixture(autouse=True)
def _same_device_for_every_test():
    """A test (or a script run in-process) may switch the device; the next test starts on the suite's."""
    device = backend.get_device()
    yield
    backend._device = device


def on_device(a):
    """Host data (NumPy array, list, number) as an array on the device the suite runs on."""
    return backend.device_module().asarray(a)


def to_host(a):
    """A Tensor's data or a device array as a NumPy array (anything else unchanged), to compare on the host."""
    a = a.data if isinstance(a, Tensor) else a
    return backend.to_numpy(a) if backend.is_cupy_array(a) else a


@contextlib.contextmanager
def emulated_gpu():
    """The CuPy emulation as the current device for one block, in any suite: yields `cupy`,
    whose `_emulation.counts` counts host syncs and host-to-device copies."""
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] in ("cupy", "cupyx")}
    device, path, pythonpath = backend.get_device(), sys.path[:], os.environ.get("PYTHONPATH")
    try:
        install_emulation()
        import cupy
        backend.set_device("gpu")
        cupy._emulation.counts.reset()
        yield cupy
    finally:
        sys.path[:] = path
        os.environ.pop("PYTHONPATH", None)
        if pythonpath is not None:
            os.environ["PYTHONPATH"] = pythonpath
        for name in [m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx")]:
            del sys.modules[name]
        sys.modules.update(saved)
        backend._device = device


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
    from it, size + 1 to size + most: longer sequences, larger vocabularies, wider rows than the
    visible ones. Gradient checks (two forwards per entry) vary a little (most=6); tests against
    a loop or fixed formula written in the test vary widely (most=300: lengths of hundreds,
    widths past 64, vocabularies past 1,000)."""
    if TEST_SEED == 0:
        return size
    return size + int(np.random.default_rng([TEST_SEED, size, most]).integers(1, most + 1))


def task_marks(graded, *also, weight=1):
    """The marks of `@task(graded, *also)` for one parameter: pytest.param(..., marks=task_marks("1.5"))."""
    return [pytest.mark.task(graded, weight=weight)] + [pytest.mark.task(task_id) for task_id in also]


def task(graded, *also, weight=1):
    """Mark a test as grading assignment task `graded` (tools/grade.py) and as running the
    code of the tasks in `also` too, so that a handout without any of them fails it.
    `weight`: the test's share of the task's points, relative to the task's other tests
    (a gradient check weighs more than a dtype check)."""
    def mark(test):
        test = pytest.mark.task(graded, weight=weight)(test)  # applied first: the mark nearest the test
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
        return Tensor(on_device(data), requires_grad=requires_grad)
    return make
