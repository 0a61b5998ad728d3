"""Cost probes: each task's backwards run once at a size where the reference takes ~10-50 ms.

Finite differences or a Jacobian built from the forward take minutes there, whatever their
method, so the grader catches them by cost: it times the teacher's reference in a process of
its own first (`python -m tools.cost_probes 3.2 4.1` prints {task: seconds}), and the grading
plugin fails a task whose probe takes more than SLOWER times that (tools/grading_plugin.py).
A probe uses the public ops only, so it holds no answer.
"""
import json
import sys
import time

SLOWER = 50  # how many times the reference's time a backward may take at the probe's size
FLOOR_S = 1.0  # a budget never below this: a probe of a few ms is timing noise, a first call slower


def _leaf(rng, *shape):
    from minisum import Tensor
    return Tensor(rng.standard_normal(shape), requires_grad=True)


def _arithmetic(rng):
    from minisum.ops import div, mul
    a, b = _leaf(rng, 1024, 1024), _leaf(rng, 1024, 1024)
    return div(mul(a, b), b * b + 1)


def _elementwise(rng):
    from minisum.ops import exp, tanh
    return tanh(exp(_leaf(rng, 1024, 1024) * 0.1))


def _reductions(rng):
    from minisum.ops import max, mean
    x = _leaf(rng, 1024, 1024)
    return mean(x, 1, True) + max(x, 1, True)


def _matmul(rng):
    from minisum.ops import linear, matmul
    return linear(matmul(_leaf(rng, 256, 256), _leaf(rng, 256, 256)), _leaf(rng, 128, 256), _leaf(rng, 128))


def _softmax(rng):
    from minisum.ops import log_softmax, softmax
    return softmax(_leaf(rng, 512, 1024)) + log_softmax(_leaf(rng, 512, 1024))


def _layer_norm(rng):
    from minisum.ops import layer_norm
    return layer_norm(_leaf(rng, 4096, 256), _leaf(rng, 256), _leaf(rng, 256))


def _embedding(rng):
    from minisum.ops import embedding
    return embedding(_leaf(rng, 8192, 256), rng.integers(0, 8192, (16, 256)))


def _cumsum(rng):
    from minisum.ops import cumsum
    # long and wide: a Jacobian from the forward (T x T, applied with one matmul) costs T^2 per
    # channel, 2 GiB in float64 and ~8 s in float32 here (BLAS and all), where the loop takes ~25 ms
    return cumsum(_leaf(rng, 1, 16384, 512), axis=1)


def _attention(rng):
    from minisum.ops import attention
    q, k, v = (_leaf(rng, 1, 256, 128) for _ in range(3))
    return attention(q, k, v, n_heads=4, causal=True)


# task -> (what it runs, in words; the graph)
PROBES = {
    "1.3": ("mul and div of 1,024 x 1,024", _arithmetic),
    "1.4": ("exp and tanh of 1,024 x 1,024", _elementwise),
    "1.5": ("mean and max over 1,024 x 1,024", _reductions),
    "1.6": ("matmul and linear of 256 x 256", _matmul),
    "2.1": ("softmax and log-softmax of 512 x 1,024", _softmax),
    "2.2": ("layer norm of 4,096 x 256", _layer_norm),
    "3.1": ("an embedding of 8,192 x 256", _embedding),
    "3.2": ("cumsum over T 16,384", _cumsum),
    "4.1": ("causal attention over T 256", _attention),
}


def probe(task_id):
    """Seconds of the backward of the task's probe graph (its forward untimed), in this process."""
    import numpy as np
    rng = np.random.default_rng(0)
    out = PROBES[task_id][1](rng)
    upstream = rng.standard_normal(out.shape)
    start = time.perf_counter()
    out.backward(upstream)
    return time.perf_counter() - start


def reference_seconds(task_ids, repeats=3):
    """{task: the fastest of `repeats` probe times} in this process."""
    return {t: min(probe(t) for _ in range(repeats)) for t in task_ids if t in PROBES}


if __name__ == "__main__":
    print(json.dumps(reference_seconds(sys.argv[1:])))
