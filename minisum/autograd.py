"""Tensor and reverse-mode automatic differentiation.

A `Tensor` wraps an array (`data`) and, once `backward()` has run, its gradient (`grad`).
Every operation is a `Function`: `forward` computes on raw arrays, `backward` turns the
gradient of the output into gradients of the inputs. Calling a Function on tensors records
it as the `creator` of its output, so the tensors form a graph that `backward()` walks in
reverse topological order, applying the chain rule one Function at a time.

Tensor's operators (`a + b`, `a @ b`, `a[i]`, `a.sum()`) are methods of its class below;
each calls the op of the same meaning in minisum.ops, imported when first used (the ops
import this module for Function and Tensor).
"""
import contextlib
import numbers

import numpy as np

from minisum.backend import device_module, get_array_module, to_numpy

_grad_enabled = True
DEFAULT_DTYPE = np.float32
NUMERIC_KINDS = "biufc"  # NumPy dtype kinds a tensor may hold; not strings, objects, dates
GRAD_KINDS = "fc"  # only floating point (and complex) tensors may require gradients, as in PyTorch


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

    The contract, which `backward()` checks:

    - `forward(*arrays)` receives raw arrays (NumPy or CuPy, never Tensors), one per input in
      the order of the call; numbers and host arrays among the inputs arrive as arrays on the
      device of the tensors. For an op with `promotes = True` they arrive cast to the dtype
      PyTorch's type promotion gives (see `result_dtype`). It returns the output array, may
      keep on `self` what `backward` needs, and never writes into its inputs.
    - `backward(grad_out)` receives the gradient of the output: an array of the output's shape
      and dtype, which it must not write into (it may be the caller's own array). It returns
      one gradient per input (a tuple, or the bare array for a one-input op). Each is None or
      an array of that input's shape and of the dtype forward received for it; None is allowed
      for an input that needs no gradient (`self.needs_grad[i]` False), and computing one
      anyway only wastes time. A gradient may be a fresh array or a read-only view of one
      (`broadcast_to`): the engine never writes into it, and a leaf's `.grad` gets its own
      copy unless the class sets `hands_over_grads`.
    """

    # True for an op whose backward returns new arrays that nothing else holds: a leaf may
    # then keep them as its .grad without a copy (the fused output layer's dW is 103 MB).
    hands_over_grads = False
    # True for an op whose inputs are cast to one dtype first (arithmetic, where, matmul):
    # PyTorch's type promotion, not NumPy's (see result_dtype).
    promotes = False
    # True once backward(free_graph=True) has released the op's inputs and saved arrays.
    released = False

    def __call__(self, *inputs):
        tensors = [_as_tensor(x, inputs) for x in inputs]
        arrays = [t.data for t in tensors]
        xp = _array_module(type(self).__name__, arrays)
        if self.promotes:
            dtype = self.result_dtype(inputs)
            arrays = [a.astype(dtype, copy=False) for a in arrays]
        out = Tensor(xp.asarray(self.forward(*arrays)))  # NumPy reductions return scalars, not arrays
        if _grad_enabled and any(t.requires_grad for t in tensors) and out.dtype.kind in GRAD_KINDS:
            self.inputs = tensors
            self.needs_grad = [t.requires_grad for t in tensors]
            self.input_dtypes = [a.dtype for a in arrays]
            self.output_id = id(out)  # stays valid: a consumer or the caller holds `out`
            out.requires_grad = True
            out.creator = self
        return out

    def result_dtype(self, inputs):
        return result_dtype(inputs)

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def release(self):
        """Forget the inputs and whatever forward saved: backward(free_graph=True) calls this
        once the op's gradients are out, so that the arrays go then, not when the loss goes."""
        vars(self).clear()
        self.inputs = ()
        self.released = True


def _array_module(op_name, arrays):
    """get_array_module of the op's arrays; on a NumPy/CuPy mix, an error that names the op and the remedy."""
    try:
        return get_array_module(*arrays)
    except TypeError:
        raise TypeError(f"cannot mix NumPy and CuPy arrays in one op: {op_name} got arrays on both devices, "
                        "cpu (NumPy) and gpu (CuPy); "
                        "move the model with model.to(device) and the inputs with minisum.to_device first") from None


# ----- type promotion, as PyTorch does it --------------------------------------------------
def _category(dtype):
    """0 bool, 1 integer, 2 floating point, 3 complex."""
    return {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}[dtype.kind]


def _promote_types(a, b):
    """PyTorch's promote_types: within a category NumPy's rule; across, the higher category's
    dtype (int64 with float32 is float32, where NumPy says float64)."""
    if a is None or b is None:
        return a if b is None else b
    if _category(a) == _category(b):
        return np.promote_types(a, b)
    higher, lower = (a, b) if _category(a) > _category(b) else (b, a)
    return np.promote_types(higher, lower) if _category(higher) == 3 else higher


def _combine(higher, lower):
    """A higher-priority group's dtype wins unless a lower group is of a higher category."""
    if higher is None or lower is None:
        return lower if higher is None else higher
    return higher if _category(higher) >= _category(lower) else _promote_types(higher, lower)


def result_dtype(inputs):
    """The dtype of an elementwise op on `inputs` by PyTorch's rule: tensors with dimensions
    decide, then 0-d tensors and arrays, then Python and NumPy numbers, each group only where it
    is of a higher category (bool < integer < float). So float32 stays float32 with a float64
    0-d value, an integer array or `np.int64(2)`, and an integer tensor times 0.5 is float32."""
    common = _one_float_dtype(inputs)
    if common is not None:
        return common
    groups = {"dims": None, "zero": None, "numbers": None}
    for x in inputs:
        data = x.data if isinstance(x, Tensor) else x
        if isinstance(data, (numbers.Number, np.generic)):
            kind = np.asarray(data).dtype
            dtype = np.dtype(DEFAULT_DTYPE) if kind.kind == "f" else np.dtype(np.complex64) if kind.kind == "c" \
                else np.dtype(np.int64) if kind.kind in "iu" else kind
            group = "numbers"
        else:
            dtype = data.dtype if hasattr(data, "dtype") else np.asarray(data).dtype
            group = "dims" if np.ndim(data) else "zero"
        groups[group] = _promote_types(groups[group], dtype)
    return _combine(groups["dims"], _combine(groups["zero"], groups["numbers"]))


def _one_float_dtype(inputs):
    """The common case, which the rule above leaves as it is: float tensors of one dtype, maybe
    with Python numbers (x * 0.5, 1 - y). Their dtype, or None for any other mix. A shortcut:
    this runs for every op of a step, and the full rule costs more than a small op itself."""
    dtype = None
    for x in inputs:
        if isinstance(x, Tensor):
            if dtype is not None and x.dtype != dtype:
                return None
            dtype = x.dtype
        elif not isinstance(x, (int, float)):
            return None
    return dtype if dtype is not None and dtype.kind == "f" else None


def _as_tensor(x, inputs):
    """`x` as a Tensor on the device of the op's tensors (a host array is copied there). A Python
    number takes their float dtype, so that `x + 1` stays float32."""
    if isinstance(x, Tensor):
        return x
    tensors = [t for t in inputs if isinstance(t, Tensor)]
    if not tensors:
        return Tensor(x)
    floats = [t.dtype for t in tensors if t.dtype.kind == "f"]
    xp = get_array_module(tensors[0].data)
    if isinstance(x, (int, float)):  # filled in on the device: no host-to-device copy per call
        return Tensor(xp.full((), x, dtype=floats[0] if floats else None))
    if get_array_module(x) is not np:  # a GPU array stays there: next to CPU tensors it is an error
        return Tensor(x)
    return Tensor(xp.asarray(x))


def _topological_order(root):
    """The Functions that `root` (a Tensor made by an op) depends on, as a list in the order
    backward() must visit them: `root.creator` first, and each Function after every Function
    that consumes its output (so its output's gradient is complete when it is visited).

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


def _ops():
    """minisum.ops, imported on first use: it imports this module for Function and Tensor."""
    from minisum import ops
    return ops


class Tensor:
    """An array with an optional gradient and a link to the Function that made it.

    `Tensor(array)` wraps the array itself, without a copy (the ops make their outputs so);
    `minisum.tensor` copies and `minisum.from_numpy` shares, as in PyTorch.
    The gradient always lives on the device of the data: one given on the other device
    (`backward(grad)`, `t.grad = ...`) is moved there, one copy.
    """

    __array_ufunc__ = None  # `array * Tensor` calls Tensor.__rmul__ (NumPy's and CuPy's rule)

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, np.generic):  # a NumPy scalar keeps its dtype
            data = device_module().asarray(data, dtype=dtype)
        elif not hasattr(data, "shape"):  # Python number or list
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
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{grad})"

    def item(self):
        if self.size != 1:
            raise ValueError(f"only a tensor of one element converts to a Python number, "
                             f"this one has shape {self.shape}")
        return self.data.item()

    def __bool__(self):
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def numpy(self):
        return to_numpy(self.data)

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and self.dtype.kind not in GRAD_KINDS:
            raise TypeError(f"requires_grad=True needs a floating point tensor, got {self.dtype}: "
                            "create it with a float dtype (dtype=np.float32)")
        self._requires_grad = bool(value)

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        self._grad = None if value is None else _on_device_of(self.data, value)

    def zero_grad(self):
        self.grad = None

    # ----- operators: each calls the op of the same meaning in minisum.ops ----------------
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().sub(self, other)

    def __rsub__(self, other):
        return _ops().sub(other, self)

    def __mul__(self, other):
        return _ops().mul(self, other)

    def __rmul__(self, other):
        return _ops().mul(other, self)

    def __truediv__(self, other):
        return _ops().div(self, other)

    def __rtruediv__(self, other):
        return _ops().div(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __pow__(self, exponent):
        return _ops().pow(self, exponent)

    def __rpow__(self, base):
        return _ops().pow(base, self)

    def __neg__(self):
        return _ops().neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops().abs(self)

    def __getitem__(self, index):
        return _ops().getitem(self, index)

    # Comparisons give boolean tensors outside the graph: they have no gradient. `==` stays
    # identity, so that tensors can be kept in sets and dicts.
    def __lt__(self, other):
        return Tensor(self.data < _data(other))

    def __le__(self, other):
        return Tensor(self.data <= _data(other))

    def __gt__(self, other):
        return Tensor(self.data > _data(other))

    def __ge__(self, other):
        return Tensor(self.data >= _data(other))

    def reshape(self, *shape):
        return _ops().reshape(self, *shape)

    def transpose(self, *axes):
        return _ops().transpose(self, *axes)

    @property
    def T(self):
        return _ops().transpose(self)

    def sum(self, axis=None, keepdims=False):
        return _ops().sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops().mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _ops().max(self, axis, keepdims)

    def exp(self):
        return _ops().exp(self)

    def log(self):
        return _ops().log(self)

    def tanh(self):
        return _ops().tanh(self)

    def sigmoid(self):
        return _ops().sigmoid(self)

    def relu(self):
        return _ops().relu(self)

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
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of the ops "
                               "that made it requires grad (or it was made under no_grad)")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() on a non-scalar tensor of shape {self.shape} needs an "
                                 "upstream gradient: call backward(grad) with an array of that shape")
            grad = get_array_module(self.data).ones_like(self.data)
        grad = _on_device_of(self.data, grad.data if isinstance(grad, Tensor) else grad)
        if grad.shape != self.shape:
            raise ValueError(f"upstream gradient of shape {grad.shape} does not match tensor shape {self.shape}")
        if self.creator is None:  # a leaf: nothing to propagate
            _accumulate_leaf(self, grad)
            return
        _check_not_released(self.creator)

        grads = {id(self): grad}  # gradient of each tensor reached so far, by id
        for fn in _topological_order(self):
            _check_not_released(fn)
            output_grad = grads.pop(fn.output_id, None)
            if output_grad is None:  # no input of the consumers wanted this gradient
                continue
            for t, g in zip(fn.inputs, _checked_gradients(fn, fn.backward(output_grad))):
                if g is None:  # also where t requires none: _checked_gradients dropped it
                    continue
                if t.creator is None:
                    _accumulate_leaf(t, g, copy=not fn.hands_over_grads)
                elif id(t) in grads:
                    grads[id(t)] = _array(grads[id(t)] + g)
                else:
                    grads[id(t)] = g
            if free_graph:
                fn.release()


def _array(a):
    """`a` as an array: NumPy arithmetic on 0-d arrays gives NumPy scalars."""
    return np.asarray(a) if isinstance(a, np.generic) else a


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _check_not_released(fn):
    if fn.released:
        raise RuntimeError("backward() through a graph that an earlier backward(free_graph=True) "
                           "released: compute the forward pass again")


def _checked_gradients(fn, grads):
    """The gradients `fn.backward` returned, as a tuple of arrays, checked against the contract
    of Function (one per input; each None or of its input's shape and forward's dtype) and cast
    to the dtype of the input tensor where the op promoted it."""
    name = type(fn).__name__
    grads = grads if isinstance(grads, tuple) else (grads,)
    if len(grads) != len(fn.inputs):
        raise RuntimeError(f"{name}.backward returned {len(grads)} gradient(s) for {len(fn.inputs)} input(s): "
                           "return one per input, None for an input that needs none")
    checked = []
    for i, (t, g, dtype) in enumerate(zip(fn.inputs, grads, fn.input_dtypes)):
        if g is None or not t.requires_grad:
            checked.append(None)
            continue
        g = _array(g)
        if not hasattr(g, "shape") or g.shape != t.shape:
            raise RuntimeError(f"{name}.backward returned a gradient of shape {getattr(g, 'shape', type(g).__name__)} "
                               f"for input {i} of shape {t.shape}: it must have the input's shape")
        if g.dtype != dtype:
            raise RuntimeError(f"{name}.backward returned a {g.dtype} gradient for input {i} of dtype {dtype}: "
                               "it must have the dtype of the array forward received")
        checked.append(g.astype(t.dtype, copy=False))
    return checked


def _on_device_of(data, a):
    """Array `a` on the device of array `data` (itself if it is there already)."""
    xp = get_array_module(data)
    if get_array_module(a) is xp:
        return xp.asarray(a)  # a NumPy scalar becomes a 0-d array
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
    """A new leaf tensor on the current device, with its own copy of `data`, as torch.tensor:
    later in-place updates (optimizer steps) never write into the caller's array. Python
    floats become float32; arrays keep their dtype. To share an array instead, `from_numpy`."""
    if dtype is None and not hasattr(data, "dtype"):
        dtype = _default_dtype_for(data)
    data = data.data if isinstance(data, Tensor) else data
    return Tensor(device_module().array(data, dtype=dtype, copy=True), requires_grad=requires_grad)


def from_numpy(array, requires_grad=False):
    """A leaf tensor that shares `array` (NumPy, or CuPy), as torch.from_numpy: no copy, so
    changes to the array show in the tensor and an optimizer step on the tensor writes into
    the array. The tensor lives where the array does."""
    if not hasattr(array, "shape") or isinstance(array, np.generic):
        raise TypeError(f"from_numpy needs an array, got {type(array).__name__}: "
                        "use minisum.tensor for numbers and lists")
    return Tensor(array, requires_grad=requires_grad)
