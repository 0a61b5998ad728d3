"""What the three training scripts share: the error guard, the device, batches, progress, reports.

`run_main(main)` turns every way a run can end short into one line on stderr and its exit
status: a user error 2, a model that diverged 3 (after the others finished and everything
was saved), Ctrl-C 130 and SIGTERM 143 (after the script saved a checkpoint).
"""
import json
import os
import platform
import sys
import time
import traceback

import numpy as np

from minisum import backend, distributed
from minisum.atomic import atomic_open
from minisum.errors import UserError
from minisum.run.meter import Diverged

EXIT_USER_ERROR, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130
SCRIPT_PACKAGES = ("datasets", "tokenizers", "matplotlib")  # requirements.txt's, beyond NumPy


def run_main(main):
    """Call main(); user errors become one clear line and a non-zero exit, not a traceback.
    NumPy's overflow warnings are off: a diverging model is reported once, by the script.
    With several ranks, a rank that fails ends every rank (World.fail), in one line naming it."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            main()
    except UserError as err:
        fail(f"error: {err}", EXIT_USER_ERROR)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in SCRIPT_PACKAGES:
            fail(f"error: this script needs the package {err.name!r}, which is not installed: "
                 "pip install -r requirements.txt", EXIT_USER_ERROR)
        if not several_ranks():
            raise  # a missing module of minisum's own is a bug: its traceback says where
        bug(err)
    except Diverged as err:  # every rank reads the same sums: all of them end here alike
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_DIVERGED)
    except KeyboardInterrupt as err:  # signals.Stopped carries the status of its signal
        if getattr(err, "exit_code", None) is None:  # a second Ctrl-C: this rank stops at once
            fail("interrupted", EXIT_INTERRUPTED)
        print("interrupted", file=sys.stderr)
        sys.exit(err.exit_code)
    except Exception as err:
        if not several_ranks():
            raise
        bug(err)


def several_ranks():
    world = distributed.current()
    return world is not None and world.size > 1


def fail(line, exit_code):
    """Print `line` and exit; with several ranks, end them all (naming this rank)."""
    if not several_ranks():
        print(line, file=sys.stderr)
        sys.exit(exit_code)
    distributed.current().fail(line, exit_code)


def bug(err):
    """With several ranks, a bug's traceback, then every rank ends (none waits for this one forever)."""
    traceback.print_exception(err, file=sys.__stderr__)
    distributed.current().fail(f"error: {type(err).__name__}: {err}", 1)


def setup_device(name, seed):
    """Select the device ("cpu" or "gpu") and seed every generator."""
    backend.set_device(name)
    backend.seed(seed)


def hardware_info():
    """Where the numbers came from, for results.json."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "device": backend.get_device()}
    if backend.get_device() == "gpu":
        cupy = backend.device_module()
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        info.update(cupy=cupy.__version__, gpu=props["name"].decode())
    return info


def index_batches(n, batch_size, order=None):
    """Row selections of n examples cut into batches of `batch_size` (the last may be smaller):
    slices of `order` (e.g. a shuffled permutation, on the device: no copy per batch), or plain
    slices 0..n-1 without one."""
    cuts = [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    return cuts if order is None else [order[cut] for cut in cuts]


def to_device_batch(*arrays):
    """Arrays of one shape (a batch's inputs and targets) on the device, in one copy."""
    if backend.get_device() == "cpu":
        return arrays
    return tuple(backend.to_device(np.stack(arrays)))


def pyplot():
    """matplotlib.pyplot, imported on first use, drawing to files only (no window, no display)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_json(path, data):
    """Write JSON atomically: a crash never leaves half a results file."""
    with atomic_open(path, "w") as f:
        json.dump(data, f, indent=2)


def progress(iterable, total, desc, unit="batch"):
    """A tqdm progress bar (tqdm comes with `datasets`); a plain iterator if it is missing."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                disable=not sys.stderr.isatty() and os.environ.get("MINISUM_PROGRESS") != "1")


def synchronize():
    """Wait for the GPU to finish queued work, so timings measure work, not queueing."""
    if backend.get_device() == "gpu":
        backend.device_module().cuda.Stream.null.synchronize()


class Timer:
    """with Timer() as t: ...;  t.seconds (synchronised with the GPU at both ends); t.elapsed() inside."""

    def __enter__(self):
        synchronize()
        self.start = time.perf_counter()
        return self

    def elapsed(self):
        """Seconds since the start, without waiting for the GPU (for progress reports)."""
        return time.perf_counter() - self.start

    def __exit__(self, *exc):
        synchronize()
        self.seconds = time.perf_counter() - self.start
