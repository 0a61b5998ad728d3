"""Run a training script the way tests/test_distributed.py needs, one process of a run:

    python tests/distributed_launch.py [--float64] [--signal-at STEP] [--fail-at STEP] SCRIPT ARGS...

--float64     parameters in float64 (the scripts train in float32), so that the ranks' results
              can be compared with one process's down to the order of the sums
--signal-at   rank 0 sends itself SIGTERM during training step STEP (counted from 1 over the run)
--fail-at     the last rank raises an exception in training step STEP

Steps are counted where each script takes one: train_lm.py's lm_train_step, train_cls.py's
clip_grad_value (once per step, before the optimizer's), train_mm.py's train_step.
"""
import os
import signal
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import minisum.nn.init  # noqa: E402
from minisum import distributed  # noqa: E402
from minisum.autograd import Tensor  # noqa: E402
from minisum.backend import to_device  # noqa: E402
from minisum.run import runtime  # noqa: E402

STEP_FUNCTIONS = {"train_lm": "lm_train_step", "train_cls": "clip_grad_value", "train_mm": "train_step"}


def main(argv):
    options = {}
    while argv[0].startswith("--"):
        flag = argv.pop(0)
        options[flag] = True if flag == "--float64" else int(argv.pop(0))
    script, args = Path(argv[0]).stem, argv[1:]
    if options.get("--float64"):
        minisum.nn.init.parameter = lambda array: Tensor(to_device(array.astype(np.float64)), requires_grad=True)
    module = __import__(script)
    step_function = getattr(module, STEP_FUNCTIONS[script])
    steps = 0

    def counted(*a, **k):
        nonlocal steps
        steps += 1
        world = distributed.world()
        if steps == options.get("--signal-at") and world.is_main:
            os.kill(os.getpid(), signal.SIGTERM)
        if steps == options.get("--fail-at") and world.rank == world.size - 1:
            raise RuntimeError(f"injected failure in step {steps}")
        return step_function(*a, **k)

    setattr(module, STEP_FUNCTIONS[script], counted)
    runtime.run_main(lambda: module.main(args))


if __name__ == "__main__":
    main(sys.argv[1:])
