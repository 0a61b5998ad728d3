"""Will the run fit? What a training step holds, estimated from the flags before anything is loaded.

At its peak a training step holds every parameter four times (the weights, their gradients and
AdamW's two moments) and the activations: what the graph keeps for backward, and the largest
operation's temporaries. When that exceeds the memory free on the device, the run cannot
finish, so it is refused in one line with the estimate, instead of an allocation error
mid-training. The scripts size their own activations (train_lm.py's `step_memory`, tested
against a step's measured peak in tests/test_train_lm.py).
"""
import math

from minisum import backend
from minisum.errors import UserError

FLOAT32 = 4
OPTIMIZER_COPIES = 4  # weights, gradients, AdamW's m and v


def free_bytes():
    """Memory free on the current device: the GPU's, or the host's MemAvailable; None if unknown."""
    if backend.get_device() == "gpu":
        return backend.device_module().cuda.runtime.memGetInfo()[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def format_bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def step_bytes(parameters, activations):
    """Bytes a float32 training step holds at its peak. activations: {description: (copies, shape)}."""
    return FLOAT32 * (OPTIMIZER_COPIES * parameters + sum(copies * math.prod(shape)
                                                           for copies, shape in activations.values()))


def check_fits(parameters, activations, advice):
    """Refuse, in one line, a run whose step (see step_bytes) needs more than the free memory;
    the line names the largest activation. `advice` says which flags to lower."""
    free = free_bytes()
    if free is None:
        return
    needed = step_bytes(parameters, activations)
    if needed > free:
        name, (copies, shape) = max(activations.items(), key=lambda item: item[1][0] * math.prod(item[1][1]))
        dims = " x ".join(f"{d:,}" for d in shape)
        raise UserError(f"this run cannot fit in memory: a training step holds about {format_bytes(needed)}, the "
                        f"most for its {name} ({f'{copies} x ' if copies > 1 else ''}{dims} float32), "
                        f"{format_bytes(free)} are free on the {backend.get_device()}; {advice}")
