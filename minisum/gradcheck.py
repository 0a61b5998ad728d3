"""Gradient checking: compare backward() with finite differences.

For a function f of some tensors and a fixed random upstream gradient g, the scalar
L = sum(f(x) * g) has dL/dx = (what backward computes) and, numerically,
dL/dx_i ~ (L(x_i + h) - L(x_i - h)) / 2h. A random g rather than ones matters: softmax
outputs sum to one, so with g = 1 their true gradient is 0 and any bug would pass.
Run it in float64; float32 rounding swamps central differences.
"""
import numpy as np

from minisum import checks
from minisum.autograd import Tensor, no_grad
from minisum.backend import get_array_module, to_numpy

TINY = 1e-12
ZERO_GRADIENT = 1e-8  # a largest gradient entry below this means the gradient is zero


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree."""


def relative_error(analytic, numeric, floor=TINY):
    """|a - n| / max(|a| + |n|, floor), elementwise: 0 for a match, 1 for opposite signs."""
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)


def _same(a, b):
    """Whether two arrays hold the same values (NaN equal to NaN)."""
    a, b = to_numpy(a), to_numpy(b)
    return a.shape == b.shape and bool(np.all((a == b) | ((a != a) & (b != b))))


def numerical_gradient(fn, inputs, index, upstream, eps):
    """Central differences of sum(fn(*inputs) * upstream) with respect to inputs[index]."""
    x = inputs[index].data
    grad = np.zeros(x.shape, dtype=np.float64)
    with no_grad():
        for i in np.ndindex(x.shape):
            original = x[i].item()
            x[i] = original + eps
            plus = (fn(*inputs).data * upstream).sum().item()
            x[i] = original - eps
            minus = (fn(*inputs).data * upstream).sum().item()
            x[i] = original
            grad[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn, *inputs, eps=1e-6, tol=1e-6, seed=0):
    """Check every gradient of `fn` at `inputs`; return the worst relative error per input.

    inputs: tensors (those with requires_grad are checked; use float64) or other arguments.
    Raises GradcheckError naming the input, the worst relative error and where it occurred
    (or saying that the outputs are too large for finite differences to check anything).
    """
    checks.real("eps", eps, above=0)
    checks.real("tol", tol, above=0)
    rng = np.random.default_rng(seed)
    out = fn(*inputs)
    xp = get_array_module(out.data)
    upstream = xp.asarray(rng.standard_normal(out.shape)).astype(out.dtype)

    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i in checked:
        inputs[i].grad = None
    # The backward gets a copy of the upstream gradient, and must leave it and the inputs as they
    # were: the numerical side below uses them (a backward that zeroes both would match itself).
    given = upstream.copy()
    before = {i: t.data.copy() for i, t in enumerate(inputs) if isinstance(t, Tensor)}
    out.backward(given)
    if not _same(given, upstream):
        raise GradcheckError("the backward wrote into the upstream gradient it was given: a backward must "
                             "leave its grad_out as it is (compute into a new array)")
    for i, data in before.items():
        if not _same(inputs[i].data, data):
            raise GradcheckError(f"the backward wrote into input {i}: a backward must leave the op's inputs "
                                 "(and what forward saved of them) as they are")
    # L carries float64 rounding, a few 1e-16 sum|f(x) g| (in f and in the sum), so a numerical
    # gradient is only good to noise = that / eps. Entries below noise / tol are judged against that floor.
    noise = 4 * np.finfo(np.float64).eps * float(np.abs(to_numpy(out.data * upstream)).sum()) / eps
    floor = max(noise / tol, TINY)

    worst = {}
    for i in checked:
        analytic = inputs[i].grad
        analytic = np.zeros(inputs[i].shape) if analytic is None else to_numpy(analytic).astype(np.float64)
        largest = float(np.abs(analytic).max(initial=0.0))
        # A gradient that is truly zero (largest ~ rounding) is checked as such; a real one must be
        # resolved by the finite differences to at least 0.1%.
        if largest > ZERO_GRADIENT and noise > 1e-3 * largest:
            raise GradcheckError(f"input {i} cannot be checked: the rounding noise of the finite differences "
                                 f"({noise:.1e}) is too large for its largest gradient ({largest:.1e}); "
                                 "keep the outputs of fn moderate (no -1e9 fills)")
        numeric = numerical_gradient(fn, inputs, i, upstream, eps)
        errors = np.asarray(relative_error(analytic, numeric, floor))  # an array even for 0-d inputs
        # Entries where both gradients are ~0 carry no information; skip them.
        errors[(np.abs(analytic) < TINY * 1e3) & (np.abs(numeric) < TINY * 1e3)] = 0.0
        where = np.unravel_index(int(np.argmax(errors)), errors.shape) if errors.size else ()
        worst[i] = float(errors.max()) if errors.size else 0.0
        if worst[i] > tol:
            raise GradcheckError(
                f"gradient of input {i} (shape {inputs[i].shape}) is wrong: worst relative error "
                f"{worst[i]:.2e} at index {tuple(int(j) for j in where)} "
                f"(analytic {analytic[where]:.6g}, numerical {numeric[where]:.6g}, tolerance {tol:.0e})")
    return worst

