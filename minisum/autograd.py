"""Tensor and reverse-mode automatic differentiation.

A `Tensor` wraps an array (`data`) and, once `backward()` has run, its gradient (`grad`).
Every operation is a `Function`: `forward` computes on raw arrays, `backward` turns the
gradient of the output into gradients of the inputs. Calling a Function on tensors records
it as the `creator` of its output, so the tensors form a graph that `backward()` walks in
reverse topological order, applying the chain rule one Function at a time.
"""
import contextlib

import numpy as np

from minisum.backend import device_module, get_array_module, to_numpy

_grad_enabled = True
DEFAULT_DTYPE = np.float32
NUMERIC_KINDS = "biufc"  # NumPy dtype kinds a tensor may hold; not strings, objects, dates


@contextlib.contextmanager
def no_grad():
    """Inside this block no graph is recorded (evaluation, optimizer updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


class Function:
    """One differentiable operation. Subclasses define `forward` and `backward` on arrays.

    `forward(*arrays)` returns the output array and may keep on `self` what `backward`
    needs. `backward(grad_out)` returns one gradient per input (None for an input that
    needs none); `self.needs_grad[i]` says whether input i wants one.
    """

    # True for an op whose backward returns new arrays that nothing else holds: a leaf may
    # then keep them as its .grad without a copy (the fused output layer's dW is 103 MB).
    hands_over_grads = False

    def __call__(self, *inputs):
        tensors = [_as_tensor(x, inputs) for x in inputs]
        arrays = [t.data for t in tensors]
        xp = get_array_module(*arrays)  # raises on a NumPy/CuPy mix
        out = Tensor(xp.asarray(self.forward(*arrays)))  # NumPy reductions return scalars, not arrays
        if _grad_enabled and any(t.requires_grad for t in tensors):
            self.inputs = tensors
            self.needs_grad = [t.requires_grad for t in tensors]
            self.output_id = id(out)  # stays valid: a consumer or the caller holds `out`
            out.requires_grad = True
            out.creator = self
        return out

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def release(self):
        """Forget the inputs and whatever forward saved: backward(free_graph=True) calls this
        once the op's gradients are out, so that the arrays go then, not when the loss goes."""
        vars(self).clear()
        self.inputs = None


def _as_tensor(x, inputs):
    """`x` as a Tensor on the device of the op's tensors. A Python number takes their float
    dtype, so that `x + 1` stays float32: NumPy promotes float32 with a 0-d int64 array to float64."""
    if isinstance(x, Tensor):
        return x
    tensors = [t for t in inputs if isinstance(t, Tensor)]
    if not tensors:
        return Tensor(x)
    floats = [t.dtype for t in tensors if t.dtype.kind == "f"]
    xp = get_array_module(tensors[0].data)
    if isinstance(x, (int, float)):  # filled in on the device: no host-to-device copy per call
        return Tensor(xp.full((), x, dtype=floats[0] if floats else None))
    return Tensor(xp.asarray(x))


def _topological_order(root):
    """Functions reachable from `root`, each after every Function that consumes its output.

    Iterative depth-first search: a recursive one would overflow Python's stack on deep
    graphs (a 10,000-step loop is 10,000 levels deep).
    """
    # BEGIN TASK 1.1 topological sort for backward()
    order, visited = [], set()
    stack = [(root.creator, False)]
    while stack:
        fn, children_done = stack.pop()
        if children_done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for t in fn.inputs:
            if t.creator is not None and id(t.creator) not in visited:
                stack.append((t.creator, False))
    return order[::-1]  # the root's creator first
    # END TASK 1.1


class Tensor:
    """An array with an optional gradient and a link to the Function that made it.

    The gradient always lives on the device of the data: one given on the other device
    (`backward(grad)`, `t.grad = ...`) is moved there, one copy.
    """

    __array_ufunc__ = None  # `array * Tensor` calls Tensor.__rmul__ (NumPy's and CuPy's rule)

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "shape"):  # Python number or list
            data = device_module().asarray(data, dtype=dtype or _default_dtype_for(data))
        elif dtype is not None and data.dtype != dtype:
            data = data.astype(dtype)
        if data.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(f"tensor data must be numbers (bool, int, float), got an array of {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self.creator = None

    # ----- plain properties -------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{grad})"

    def item(self):
        return self.data.item()

    def numpy(self):
        return to_numpy(self.data)

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        self._grad = None if value is None else _on_device_of(self.data, value)

    def zero_grad(self):
        self.grad = None

    # ----- backpropagation --------------------------------------------------------------
    def backward(self, grad=None, free_graph=False):
        """Accumulate d(self)/d(leaf) * grad into the `.grad` of every leaf that requires it.

        `grad` is the upstream gradient, same shape as self; it defaults to 1 for a scalar.
        Leaf gradients add up across calls until zeroed, as in PyTorch.
        free_graph=True releases each op's saved arrays and inputs as soon as its gradients
        are out, as PyTorch does by default: a training step's activations are freed during
        backward instead of staying until the loss goes (280 MB at the paper's size). The
        graph cannot be walked again afterwards.
        """
        if self.creator is not None and self.creator.inputs is None:
            raise RuntimeError("backward() through a graph that an earlier backward(free_graph=True) "
                               "released: compute the forward pass again")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() on a non-scalar tensor of shape {self.shape} needs an "
                                 "upstream gradient: call backward(grad) with an array of that shape")
            grad = get_array_module(self.data).ones_like(self.data)
        grad = _on_device_of(self.data, grad.data if isinstance(grad, Tensor) else grad)
        if grad.shape != self.shape:
            raise ValueError(f"upstream gradient of shape {grad.shape} does not match tensor shape {self.shape}")
        if self.creator is None:  # a leaf: nothing to propagate
            if self.requires_grad:
                _accumulate_leaf(self, grad)
            return

        grads = {id(self): grad}  # gradient of each tensor reached so far, by id
        for fn in _topological_order(self):
            output_grad = grads.pop(fn.output_id, None)
            if output_grad is None:  # no input of the consumers wanted this gradient
                continue
            input_grads = fn.backward(output_grad)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for t, g in zip(fn.inputs, input_grads):
                if g is None or not t.requires_grad:
                    continue
                if t.creator is None:
                    _accumulate_leaf(t, g, copy=not fn.hands_over_grads)
                elif id(t) in grads:
                    grads[id(t)] = grads[id(t)] + g
                else:
                    grads[id(t)] = g
            if free_graph:
                fn.release()

    # Operators (a + b, a @ b, a[i], a.sum(), ...) are attached in minisum/operators.py.


def _on_device_of(data, a):
    """Array `a` on the device of array `data` (itself if it is there already)."""
    xp = get_array_module(data)
    if get_array_module(a) is xp:
        return a
    return to_numpy(a) if xp is np else xp.asarray(a)


def _accumulate_leaf(t, g, copy=True):
    # The leaf gets its own copy: g may be a read-only broadcast view, or the very array another
    # input received (the two gradients of a + b), and optimizers clip gradients in place.
    # copy=False only for an op that hands its gradients over (Function.hands_over_grads).
    if t.grad is None:
        t.grad = g.astype(t.data.dtype, copy=copy)
    else:
        t.grad = t.grad + g.astype(t.data.dtype, copy=False)


def _default_dtype_for(data):
    """float32 for Python floats (never a silent float64), the natural dtype otherwise."""
    return DEFAULT_DTYPE if np.asarray(data).dtype.kind == "f" else None


def tensor(data, requires_grad=False, dtype=None):
    """A new leaf tensor on the current device (Python floats become float32)."""
    if dtype is None and not hasattr(data, "dtype"):
        dtype = _default_dtype_for(data)
    return Tensor(device_module().asarray(data, dtype=dtype), requires_grad=requires_grad)
