"""cupyx, emulated: the scatter functions minisum uses (see cupy/__init__.py for what is checked)."""
import cupy


def _scatter(method, a, slices, value):
    if not isinstance(a, cupy.ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    getattr(a, method)(slices, value)


def scatter_add(a, slices, value):
    """a[slices] += value, unbuffered: repeated indices all add up."""
    _scatter("scatter_add", a, slices, value)


def scatter_max(a, slices, value):
    _scatter("scatter_max", a, slices, value)


def scatter_min(a, slices, value):
    _scatter("scatter_min", a, slices, value)
