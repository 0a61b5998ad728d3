"""Argument checks for the library: the ones PyTorch makes, with one-line messages.

A wrong kind of value (a float where a count belongs, a string of ids) is a TypeError, a
value out of range (vocab_size=0, lr=nan, an id past the vocabulary) a ValueError; each
message names the argument, e.g. "vocab_size must be a positive integer, got 0". The
checks run in constructors and at the top of public functions, on Python numbers and
host arrays only, so they never wait for the GPU.
"""
import math
import numbers


def sizes(**named):
    """Every keyword argument must be an integer >= 1: widths, counts, lengths."""
    for name, value in named.items():
        integer(name, value, minimum=1)


def integer(name, value, minimum):
    """An int >= minimum. Bools and floats are refused, even 3.0: a count is never a float."""
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {kind}, got {value}")


def real(name, value, minimum=None, above=None, below=None):
    """A finite number >= minimum, > above and < below (each where given); nan and inf are refused."""
    bounds = " and ".join(f"{sign} {bound}" for sign, bound in ((">=", minimum), (">", above), ("<", below))
                          if bound is not None)
    kind = f"a finite number {bounds}" if bounds else "a finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if not (math.isfinite(value) and (minimum is None or value >= minimum) and (above is None or value > above)
            and (below is None or value < below)):
        raise ValueError(f"{name} must be {kind}, got {value}")


def integer_ids(name, ids):
    """`ids`, an array, must hold integers: a float id would be truncated, a bool one read as 0 or 1."""
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integer ids, got an array of {ids.dtype}")


def ids_in_range(name, ids, limit):
    """`ids`, a NumPy array, must hold integers in [0, limit): a negative id would silently
    read from the end of a table."""
    integer_ids(name, ids)
    if ids.size and (ids.min() < 0 or ids.max() >= limit):
        bad = ids[(ids < 0) | (ids >= limit)][0]
        raise ValueError(f"{name} must be in [0, {limit}), got {bad}")
