"""Python operators and methods on Tensor: `a + b`, `a @ b`, `a[i]`, `a.sum()`, `a < b`, ...

Each one just calls the op of the same meaning in minisum.ops. Comparisons return
boolean tensors outside the graph: they have no gradient. `==` stays identity so that
tensors can be kept in sets and dicts.
"""
from minisum import ops
from minisum.autograd import Tensor


def _reverse(op):
    return lambda self, other: op(other, self)


def _compare(name):
    def compare(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(getattr(self.data, name)(other))
    return compare


def install():
    Tensor.__add__ = ops.add
    Tensor.__radd__ = _reverse(ops.add)
    Tensor.__sub__ = ops.sub
    Tensor.__rsub__ = _reverse(ops.sub)
    Tensor.__mul__ = ops.mul
    Tensor.__rmul__ = _reverse(ops.mul)
    Tensor.__truediv__ = ops.div
    Tensor.__rtruediv__ = _reverse(ops.div)
    Tensor.__matmul__ = ops.matmul
    Tensor.__rmatmul__ = _reverse(ops.matmul)
    Tensor.__pow__ = ops.pow
    Tensor.__neg__ = ops.neg
    Tensor.__getitem__ = ops.getitem
    for name in ("__lt__", "__le__", "__gt__", "__ge__"):
        setattr(Tensor, name, _compare(name))

    Tensor.reshape = ops.reshape
    Tensor.transpose = ops.transpose
    Tensor.sum = ops.sum
    Tensor.mean = ops.mean
    Tensor.max = ops.max
    Tensor.exp = ops.exp
    Tensor.log = ops.log
    Tensor.tanh = ops.tanh
    Tensor.sigmoid = ops.sigmoid
    Tensor.relu = ops.relu
    Tensor.T = property(lambda self: ops.transpose(self))
