"""Will the run fit? The largest activation, estimated from the flags before anything is loaded.

A training step keeps its largest array (attention scores, or the logits) and its gradient
at once; when those two alone exceed the memory free on the device, the run cannot finish,
so it is refused in one line with the estimate, instead of an allocation error mid-training.
"""
import math

from minisum import backend
from minisum.errors import UserError

FLOAT32 = 4


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


def check_fits(arrays, advice):
    """arrays: {description: shape} of the float32 arrays a step holds; refuse when the largest,
    with its gradient, cannot fit in the free memory. `advice` says which flags to lower."""
    free = free_bytes()
    if free is None or not arrays:
        return
    name, shape = max(arrays.items(), key=lambda item: math.prod(item[1]))
    needed = 2 * FLOAT32 * math.prod(shape)  # the array and its gradient
    if needed > free:
        dims = " x ".join(f"{d:,}" for d in shape)
        raise UserError(f"this run cannot fit in memory: its {name} ({dims} float32) and their gradient need "
                        f"{format_bytes(needed)}, {format_bytes(free)} are free on the {backend.get_device()}; "
                        f"{advice}")
