"""A strict stand-in for CuPy 13/14, backed by NumPy: minisum's GPU path, tested without a GPU.

tests/conftest.py installs it as `cupy` (and `cupyx`) behind `python -m pytest --device
emulated-gpu` (or MINISUM_TEST_DEVICE=emulated-gpu); `PYTHONPATH=tests/cupy_emulation` does
the same for any script. For example: `PYTHONPATH=tests/cupy_emulation python bench/gpu_check.py`.

What it enforces, as CuPy does:
- device arrays are their own type (`cupy.ndarray`, wrapping a NumPy array);
- no implicit conversion to NumPy: `numpy.asarray(x)`, `np.testing.*(x, ...)` raise TypeError
  (`__array__`); `.get()`, `cupy.asnumpy`, `.item()`, `.tolist()`, `int()`, `float()`,
  `bool()`, `repr()`, `format()` work and are host synchronisations;
- no mixing with host arrays: a NumPy array in a ufunc, an operator (either side), an in-place
  operator, `out=`, a function argument or a concatenation raises TypeError; a NumPy array as
  an index or as the value of an advanced-index assignment is copied to the device (counted),
  as the value of a basic (slice) assignment raises ValueError; Python and NumPy scalars are fine;
- reductions and scalar indexing return 0-d device arrays, never host scalars;
- an integer index array wraps out-of-range entries around (CuPy's kernels do not check; NumPy raises);
- only names CuPy 13/14 has exist (functions, ndarray methods, ufunc methods, cupyx.scatter_*),
  `cupy.cuda.runtime.getDeviceCount()`, `Stream.null.synchronize()`, `cupy.random`;
- a Python object with `__array_ufunc__ = None` on the right of an operator gets its reflected
  operator called (CuPy's `_should_use_rop`); one without falls into NumPy's ufunc and fails.

It counts, in `cupy._emulation.counts`, host synchronisations (`syncs`: a device value read
on the host, an output shape that depends on device data such as a boolean mask, an explicit
synchronize) and host-to-device copies (`to_device`: `cupy.asarray` of host data, a host index,
`ndarray.set`), with the line of the caller that caused each one (`where`).

What it cannot catch: numerics (float32 kernels, reduction order, fast-math, the order of
atomic adds), real kernels (compilation, unsupported dtypes in a kernel), memory (out-of-memory,
allocator pools, pinned memory), timing and asynchrony (races between streams, the cost of a
sync), multiple devices, and any CuPy behaviour NumPy does not share in the functions it
forwards to NumPy.
"""
import builtins
import collections
import os
import sys
import types

import numpy

__version__ = "14.0.0+emulated"

_HERE = os.path.dirname(os.path.abspath(__file__))


# ----- the counter ---------------------------------------------------------------------------
class _Counts:
    """Host synchronisations and host-to-device copies since the last reset()."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.syncs = 0
        self.to_device = 0
        self.where = collections.Counter()  # (kind, "file:line") -> count

    def record(self, kind):
        setattr(self, kind, getattr(self, kind) + 1)
        frame = sys._getframe(1)
        while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) in _EMULATION_DIRS:
            frame = frame.f_back
        place = f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"
        self.where[(kind, place)] += 1


_EMULATION_DIRS = {_HERE, os.path.join(os.path.dirname(_HERE), "cupyx")}
_emulation = types.SimpleNamespace(counts=_Counts())


def _sync():
    _emulation.counts.record("syncs")


def _copy_to_device():
    _emulation.counts.record("to_device")


# ----- argument checks -----------------------------------------------------------------------
_SCALARS = (int, float, bool, complex, numpy.generic)


def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def _arg(x):
    """A kernel argument: a device array, or a Python/NumPy scalar; anything else is refused."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _SCALARS):
        return x
    raise _unsupported(x)


def _loose(x):
    """A non-array argument (axis, shape, dtype, None, slice...) passes; host arrays do not."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, numpy.ndarray):
        raise _unsupported(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_loose(v) for v in x)
    return x


def _out(out):
    if out is None:
        return None
    if not isinstance(out, ndarray):
        raise TypeError(f"Argument 'out' has incorrect type (expected cupy.ndarray, got {type(out).__name__})")
    return out._a


def _wrap(result):
    """NumPy results as device arrays (scalars become 0-d arrays, as CuPy returns them)."""
    if isinstance(result, numpy.ndarray):
        return _from_numpy(result)
    if isinstance(result, numpy.generic):
        return _from_numpy(numpy.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, list):
        return [_wrap(r) for r in result]
    return result


def _from_numpy(a):
    array = ndarray.__new__(ndarray)
    array._a = a
    return array


def _call(fn, args, kwargs, check=_loose):
    out = kwargs.pop("out", None)
    args = [check(a) for a in args]
    kwargs = {k: _loose(v) for k, v in kwargs.items()}
    if out is not None:
        fn(*args, out=_out(out), **kwargs)
        return out
    return _wrap(fn(*args, **kwargs))


# ----- ufuncs --------------------------------------------------------------------------------
class ufunc:
    """A CuPy ufunc: device arrays and scalars in, device arrays out."""

    def __init__(self, name):
        self._np = getattr(numpy, name)
        self.__name__ = self.name = name
        self.nin, self.nout, self.nargs = self._np.nin, self._np.nout, self._np.nargs

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    def __call__(self, *args, **kwargs):
        if "out" in kwargs and isinstance(kwargs["out"], tuple):
            (kwargs["out"],) = kwargs["out"]
        return _call(self._np, args, kwargs, check=_arg)

    def outer(self, a, b, **kwargs):
        return _call(self._np.outer, (a, b), kwargs, check=_arg)

    def reduce(self, a, *args, **kwargs):
        return _call(self._np.reduce, (a, *args), kwargs)

    def accumulate(self, a, *args, **kwargs):
        return _call(self._np.accumulate, (a, *args), kwargs)

    def reduceat(self, a, indices, *args, **kwargs):
        return _call(self._np.reduceat, (a, indices, *args), kwargs)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise _unsupported(a)
        indices = _index(indices, a.shape)
        self._np.at(a._a, indices, *(() if b is None else (_arg(b),)))


_UFUNCS = """add subtract multiply divide true_divide floor_divide negative positive power float_power
remainder mod fmod absolute sign exp exp2 expm1 log log2 log10 log1p logaddexp logaddexp2 sqrt square
cbrt reciprocal sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh arcsinh arccosh arctanh degrees
radians deg2rad rad2deg hypot maximum minimum fmax fmin floor ceil trunc rint isnan isinf isfinite
signbit copysign nextafter ldexp frexp modf greater greater_equal less less_equal equal not_equal
logical_and logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor invert bitwise_not
left_shift right_shift conjugate conj heaviside gcd lcm""".split()
for _name in _UFUNCS:
    globals()[_name] = ufunc(_name)
abs = absolute  # noqa: A001 (CuPy has both names)


# ----- functions -----------------------------------------------------------------------------
def _function(name, namespace=numpy):
    fn = getattr(namespace, name)

    def function(*args, **kwargs):
        return _call(fn, args, kwargs)
    function.__name__ = function.__qualname__ = name
    return function


_FUNCTIONS = """empty_like zeros_like ones_like full_like copy diag diagflat tri tril triu reshape ravel
transpose swapaxes moveaxis rollaxis expand_dims squeeze broadcast_to broadcast_arrays atleast_1d
atleast_2d atleast_3d split array_split hsplit vsplit tile repeat flip fliplr flipud roll rot90 pad
where take take_along_axis choose diagonal einsum dot vdot inner outer matmul tensordot kron trace
clip around round fix real imag angle sum prod cumsum cumprod mean var std max min amax amin argmax
argmin nanmax nanmin nansum nanprod nanmean nanvar nanstd nanargmax nanargmin all any median
percentile quantile average ptp diff sort argsort lexsort partition argpartition searchsorted
isclose bincount histogram digitize cov corrcoef convolve
correlate interp meshgrid triu_indices tril_indices indices unravel_index ravel_multi_index
shape ndim size result_type can_cast promote_types common_type isscalar
iscomplexobj isrealobj issubdtype may_share_memory shares_memory put copyto""".split()
for _name in _FUNCTIONS:
    globals()[_name] = _function(_name)


def _on_device(name):
    """Functions that NumPy answers with a Python bool and CuPy with a 0-d device array."""
    fn = getattr(numpy, name)

    def function(*args, **kwargs):
        return _from_numpy(numpy.asarray(_call(fn, args, kwargs)))
    function.__name__ = name
    return function


for _name in "allclose array_equal".split():
    globals()[_name] = _on_device(_name)


def _synchronising(name):
    """Functions whose output shape depends on the data: the host must wait for the device."""
    fn = getattr(numpy, name)

    def function(*args, **kwargs):
        _sync()
        return _call(fn, args, kwargs)
    function.__name__ = name
    return function


for _name in "nonzero flatnonzero argwhere unique compress extract".split():
    globals()[_name] = _synchronising(_name)
count_nonzero = _function("count_nonzero")  # a reduction to a 0-d array: no sync


def _joining(name):
    fn = getattr(numpy, name)

    def function(arrays, *args, **kwargs):
        for a in arrays:
            if not isinstance(a, ndarray):
                raise TypeError("Only cupy arrays can be concatenated")
        return _call(fn, (list(arrays), *args), kwargs)
    function.__name__ = name
    return function


for _name in "concatenate stack vstack hstack dstack column_stack".split():
    globals()[_name] = _joining(_name)


# ----- creation: the only way in from the host -------------------------------------------------
def _creation(name):
    fn = getattr(numpy, name)

    def function(*args, **kwargs):
        return _wrap(fn(*[_loose(a) for a in args], **{k: _loose(v) for k, v in kwargs.items()}))
    function.__name__ = name
    return function


for _name in "empty zeros ones full eye identity arange linspace logspace".split():
    globals()[_name] = _creation(_name)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        return _from_numpy(numpy.array(obj._a, dtype=dtype, copy=copy or None, order=order, ndmin=ndmin))
    if isinstance(obj, (list, tuple)) and builtins.any(isinstance(v, ndarray) for v in obj):
        raise TypeError("cupy.array of a list that holds cupy arrays: use cupy.stack")
    _copy_to_device()
    return _from_numpy(numpy.array(obj, dtype=dtype, order=order, ndmin=ndmin))


def asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, ndarray):
        result = numpy.asarray(a._a, dtype=dtype, order=order)
        return a if result is a._a else _from_numpy(result)  # the array itself when nothing changes
    return array(a, dtype=dtype, order=order or "K")


asanyarray = asarray


def ascontiguousarray(a, dtype=None):
    return _from_numpy(numpy.ascontiguousarray(asarray(a, dtype)._a))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out)
    return numpy.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if builtins.any(isinstance(a, ndarray) for a in args) else numpy


# Types and constants are NumPy's, as in CuPy.
for _name in """dtype bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64
complex64 complex128 intp uintp byte short intc int_ longlong ubyte ushort uintc ulonglong half single
double csingle cdouble generic number integer signedinteger unsignedinteger inexact floating
complexfloating finfo iinfo newaxis pi e inf nan euler_gamma""".split():
    globals()[_name] = getattr(numpy, _name)


# ----- indexing ------------------------------------------------------------------------------
def _index_part(s):
    if isinstance(s, ndarray):
        if s.dtype == numpy.bool_:
            _sync()  # the result's length is the number of True entries
        return s._a
    if isinstance(s, (numpy.ndarray, list)):
        _copy_to_device()  # CuPy copies a host index to the device
        s = numpy.asarray(s)
        if s.dtype == numpy.bool_:
            _sync()
        return s
    return s


def _index(slices, shape):
    """A NumPy index for an array of `shape` from a CuPy one. Integer index arrays wrap around
    out-of-range entries as CuPy's kernels do (i % n: -1 is the last row, n the first), where
    NumPy raises IndexError."""
    parts = [_index_part(s) for s in (slices if isinstance(slices, tuple) else (slices,))]
    masks = [p for p in parts if isinstance(p, numpy.ndarray) and p.dtype == numpy.bool_]
    spanned = builtins.sum(p is not None and p is not Ellipsis for p in parts) + builtins.sum(m.ndim - 1 for m in masks)
    axis = 0
    for i, p in enumerate(parts):
        if p is Ellipsis:
            axis += len(shape) - spanned
        elif isinstance(p, numpy.ndarray) and p.dtype.kind in "iu" and axis < len(shape) and shape[axis]:
            parts[i] = p % shape[axis]
            axis += 1
        elif p is not None:
            axis += p.ndim if isinstance(p, numpy.ndarray) and p.dtype == numpy.bool_ else 1
    return tuple(parts) if isinstance(slices, tuple) else parts[0]


def _is_advanced(slices):
    parts = slices if isinstance(slices, tuple) else (slices,)
    return builtins.any(isinstance(s, (ndarray, numpy.ndarray, list)) for s in parts)


# ----- ndarray -------------------------------------------------------------------------------
def _should_use_rop(x, y):
    """CuPy's rule: defer to y's reflected operator when y opts out of ufuncs."""
    try:
        y_ufunc = y.__array_ufunc__
    except AttributeError:
        return getattr(x, "__array_priority__", 0) < getattr(y, "__array_priority__", 0)
    return y_ufunc is None


def _binary(name, ufunc_name):
    def op(x, y):
        if isinstance(y, ndarray):
            return globals()[ufunc_name](x, y)
        if _should_use_rop(x, y):
            return NotImplemented
        return getattr(numpy, ufunc_name)(x, y)  # NumPy's ufunc, which calls __array_ufunc__

    def rop(x, y):  # y op x with y not a cupy array
        return getattr(numpy, ufunc_name)(y, x)

    def iop(x, y):
        return globals()[ufunc_name](x, y, out=x)
    return op, rop, iop


_HANDLED_TYPES = None  # set below


class ndarray:
    """A device array: a NumPy array that refuses to meet the host implicitly."""

    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = numpy.empty(shape, dtype=dtype, order=order)

    # ----- attributes
    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _from_numpy(self._a.T))
    real = property(lambda self: _from_numpy(self._a.real))
    imag = property(lambda self: _from_numpy(self._a.imag))
    device = property(lambda self: cuda.Device(0))

    @property
    def base(self):
        return None if self._a.base is None else _from_numpy(self._a.base)

    # ----- to the host: every one a synchronisation
    def get(self, stream=None, order="C", out=None, blocking=True):
        _sync()
        if out is not None:
            if not isinstance(out, numpy.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            out[...] = self._a
            return out
        return numpy.array(self._a, order=order)

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self.get().item()

    def tolist(self):
        return self.get().tolist()

    def tobytes(self, order="C"):
        return self.get().tobytes(order)

    def __int__(self):
        return int(self.get())

    def __float__(self):
        return float(self.get())

    def __complex__(self):
        return complex(self.get())

    def __bool__(self):
        if self.size == 0:
            return False
        if self.size == 1:
            return bool(self.get())
        raise ValueError("The truth value of an array with more than one element is ambiguous. "
                         "Use a.any() or a.all()")

    def __repr__(self):
        return repr(self.get())

    def __str__(self):
        return str(self.get())

    def __format__(self, spec):
        return format(self.get(), spec)

    def __reduce__(self):
        return array, (self.get(),)

    # ----- from the host
    def set(self, arr, stream=None):
        if not isinstance(arr, numpy.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        _copy_to_device()
        self._a[...] = arr

    # ----- NumPy protocols, as CuPy implements them
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc_, method, *inputs, **kwargs):
        if method != "__call__":
            return NotImplemented
        if "out" in kwargs:
            (kwargs["out"],) = kwargs["out"]
        cupy_ufunc = globals().get(ufunc_.__name__)
        if not isinstance(cupy_ufunc, ufunc):
            return NotImplemented
        for x in inputs + ((kwargs["out"],) if "out" in kwargs else ()):
            if not isinstance(x, (ndarray, numpy.ndarray)) and type(x) not in _SCALAR_TYPES:
                return NotImplemented
        if ufunc_.__name__ in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
            inputs = tuple(x.item() if isinstance(x, numpy.ndarray) and x.ndim == 0 else x for x in inputs)
        return cupy_ufunc(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        module = sys.modules[__name__]
        for part in func.__module__.split(".")[1:]:
            module = getattr(module, part, None)
        cupy_func = getattr(module, func.__name__, None)
        if cupy_func is None or cupy_func is func:
            return NotImplemented
        if not builtins.all(t in _HANDLED_TYPES for t in types_):
            return NotImplemented
        return cupy_func(*args, **kwargs)

    # ----- containers
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __getitem__(self, slices):
        return _wrap(self._a[_index(slices, self.shape)])

    def __setitem__(self, slices, value):
        advanced = _is_advanced(slices)
        index = _index(slices, self.shape)
        if isinstance(value, ndarray):
            value = value._a
        elif isinstance(value, numpy.ndarray) and not advanced:
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.item()
        elif isinstance(value, (numpy.ndarray, list, tuple)):
            if not advanced:
                raise _unsupported(value)
            _copy_to_device()
        elif not isinstance(value, _SCALARS):
            raise _unsupported(value)
        self._a[index] = value

    def scatter_add(self, slices, value):
        numpy.add.at(self._a, _index(slices, self.shape), _scatter_value(value, self.dtype))

    def scatter_max(self, slices, value):
        numpy.maximum.at(self._a, _index(slices, self.shape), _scatter_value(value, self.dtype))

    def scatter_min(self, slices, value):
        numpy.minimum.at(self._a, _index(slices, self.shape), _scatter_value(value, self.dtype))

    # ----- arithmetic
    def __neg__(self):
        return negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return absolute(self)

    def __invert__(self):
        return invert(self)

    def __lt__(self, other):
        return self._compare("less", other)

    def __le__(self, other):
        return self._compare("less_equal", other)

    def __gt__(self, other):
        return self._compare("greater", other)

    def __ge__(self, other):
        return self._compare("greater_equal", other)

    def __eq__(self, other):
        return self._compare("equal", other)

    def __ne__(self, other):
        return self._compare("not_equal", other)

    __hash__ = None

    def _compare(self, name, other):
        if isinstance(other, ndarray):
            return globals()[name](self, other)
        if _should_use_rop(self, other):
            return NotImplemented
        if isinstance(other, numpy.ndarray) and other.ndim == 0:
            other = other.item()
        return getattr(numpy, name)(self, other)

    def __matmul__(self, other):
        if not isinstance(other, ndarray) and _should_use_rop(self, other):
            return NotImplemented
        return matmul(self, other)

    def __rmatmul__(self, other):
        return numpy.matmul(other, self)

    def __imatmul__(self, other):
        return matmul(self, other, out=self)

    # ----- methods
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        result = self._a.astype(dtype, order=order, copy=copy)
        return self if result is self._a else _from_numpy(result)

    def fill(self, value):
        if isinstance(value, numpy.ndarray):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.item()
        self._a.fill(_arg(value))

    def view(self, dtype=None):
        return _from_numpy(self._a.view() if dtype is None else self._a.view(dtype))

    def dot(self, b, out=None):
        return dot(self, b, out=out)

    def nonzero(self):
        return nonzero(self)

    def compress(self, condition, axis=None, out=None):
        return compress(condition, self, axis=axis, out=out)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()


def _method(name):
    def method(self, *args, **kwargs):
        return _call(getattr(self._a, name), args, kwargs)
    method.__name__ = name
    return method


for _name in """copy reshape transpose swapaxes flatten ravel squeeze take put repeat choose sort argsort
partition argpartition diagonal max argmax min argmin clip round trace sum cumsum mean var std prod
cumprod all any conj conjugate""".split():
    setattr(ndarray, _name, _method(_name))

for _name, _ufunc_name in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("truediv", "true_divide"),
                           ("floordiv", "floor_divide"), ("mod", "remainder"), ("pow", "power"),
                           ("and", "bitwise_and"), ("or", "bitwise_or"), ("xor", "bitwise_xor"),
                           ("lshift", "left_shift"), ("rshift", "right_shift")]:
    _op, _rop, _iop = _binary(_name, _ufunc_name)
    setattr(ndarray, f"__{_name}__", _op)
    setattr(ndarray, f"__r{_name}__", _rop)
    setattr(ndarray, f"__i{_name}__", _iop)

_HANDLED_TYPES = (ndarray, numpy.ndarray)
_SCALAR_TYPES = {int, float, bool, complex} | {numpy.dtype(c).type for c in "?bhilqBHILQefdFD"}


def _scatter_value(value, dtype):
    if isinstance(value, ndarray):
        return value._a.astype(dtype, copy=False)
    if isinstance(value, _SCALARS):
        return value
    _copy_to_device()  # CuPy copies a host value to the device
    return numpy.asarray(value, dtype=dtype)


# ----- submodules ----------------------------------------------------------------------------
def _submodule(name, doc):
    module = types.ModuleType(f"{__name__}.{name}", doc)
    sys.modules[module.__name__] = module
    return module


class _Stream:
    """CUDA streams do not exist here: synchronize() only counts."""

    def synchronize(self):
        _sync()

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Device:
    def __init__(self, device=None):
        if device not in (None, 0):
            raise RuntimeError(f"CUDA error: invalid device ordinal {device} (the emulation has one device)")
        self.id = 0
        self.compute_capability = "90"

    def synchronize(self):
        _sync()

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _device_properties(device):
    _Device(device)
    return {"name": b"CuPy emulation (NumPy on the host)", "totalGlobalMem": 0, "multiProcessorCount": 0,
            "major": 9, "minor": 0}


def _mem_get_info():
    """(free, total) bytes: the emulated device's arrays live in host memory."""
    page = os.sysconf("SC_PAGE_SIZE")
    return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page


cuda = _submodule("cuda", "CUDA bindings: one emulated device, one stream.")
cuda.Device = _Device
cuda.Stream = _Stream
cuda.Stream.null = _Stream()
cuda.get_current_stream = lambda device=None: cuda.Stream.null
cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, getDeviceProperties=_device_properties,
                                     deviceSynchronize=_sync, getDevice=lambda: 0, runtimeGetVersion=lambda: 12080,
                                     driverGetVersion=lambda: 12080, memGetInfo=_mem_get_info)
cuda.is_available = lambda: True


def _generator_method(name):
    def method(self, *args, **kwargs):
        return _wrap(getattr(self._rng, name)(*[_loose(a) for a in args], **{k: _loose(v) for k, v in kwargs.items()}))
    method.__name__ = name
    return method


class Generator:
    """cupy.random.Generator (from default_rng): draws made on the device."""

    def __init__(self, seed=None):
        self._rng = numpy.random.default_rng(seed)


for _name in "random integers uniform normal standard_normal permutation choice exponential beta gamma".split():
    setattr(Generator, _name, _generator_method(_name))

random = _submodule("random", "cupy.random: NumPy's generator, results on the device.")
random._global = Generator(None)
random.Generator = Generator
random.default_rng = Generator


def _seed(seed=None):
    random._global = Generator(seed)


def _random_function(name, generator_name=None):
    def function(*args, **kwargs):
        return getattr(random._global, generator_name or name)(*args, **kwargs)
    function.__name__ = name
    return function


random.seed = _seed
for _name, _gen_name in [("random", None), ("random_sample", "random"), ("uniform", None), ("normal", None),
                         ("standard_normal", None), ("permutation", None), ("choice", None)]:
    setattr(random, _name, _random_function(_name, _gen_name))
random.rand = lambda *shape, dtype=float: random._global.random(shape, dtype=dtype)
random.randn = lambda *shape, dtype=float: random._global.standard_normal(shape, dtype=dtype)
random.randint = lambda low, high=None, size=None, dtype=int: random._global.integers(low, high, size, dtype=dtype)
random.shuffle = lambda a: random._global._rng.shuffle(a._a)

linalg = _submodule("linalg", "cupy.linalg")
for _name in "norm solve inv det slogdet eigh eigvalsh svd qr cholesky lstsq pinv matrix_power matrix_rank".split():
    setattr(linalg, _name, _function(_name, numpy.linalg))

del _name
