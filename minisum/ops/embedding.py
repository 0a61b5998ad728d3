"""Embedding lookup: gather rows of a table by integer id.

Forward gathers, backward scatters: every row that was read gets the gradients of all
the places it was read from, added up (an id can appear many times in a batch).
The backward, derived step by step: docs/derivations.md#embedding
"""
import numpy as np

from minisum import checks
from minisum.autograd import Function, Tensor
from minisum.backend import get_array_module, is_cupy_array, scatter_add


class Embedding(Function):
    """y[..., :] = W[ids[...], :] with W (V, C), ids (...) integers -> y (..., C).

    dW[v] = sum of dy[...] over the positions where ids == v;  ids get no gradient.
    """

    def forward(self, weight, ids):
        self.ids, self.table_shape = ids, weight.shape
        rows = weight[ids]  # (..., C); CuPy wraps an out-of-range id around, NumPy raises
        xp = get_array_module(ids)
        if xp is not np:  # ids on the GPU are not range-checked (see `embedding`): a bad one gives a NaN row
            outside = (ids < 0) | (ids >= weight.shape[0])  # (...)
            rows += xp.where(outside, xp.nan, 0).astype(rows.dtype)[..., None]
        return rows

    def backward(self, gy):
        # BEGIN TASK 3.1 embedding and indexing backward (scatter-add)
        xp = get_array_module(gy)
        gw = xp.zeros(self.table_shape, dtype=gy.dtype)  # (V, C)
        scatter_add(gw, self.ids.reshape(-1), gy.reshape(-1, self.table_shape[1]))
        return gw, None
        # END TASK 3.1


def embedding(weight, ids):
    """The rows of `weight` (V, C) at `ids`, which must be integers in [0, V), as in PyTorch.

    Ids on the host (a list, a NumPy array: every CPU run) are checked here, a min and a
    max, and a bad one is a ValueError. Ids already on the GPU are not: reading the check's
    answer would make every forward wait for the GPU, and a training step is allowed one
    such wait, for its loss. On the GPU an out-of-range id reads a row of NaN instead (no
    wait), so the loss of that step is NaN and a training script stops the run as diverged
    when it reads the loss. Float or bool ids are a TypeError on either device.
    """
    ids = ids.data if isinstance(ids, Tensor) else ids
    if is_cupy_array(ids):
        checks.integer_ids("embedding ids", ids)  # the dtype is known without waiting for the GPU
    else:
        ids = np.asarray(ids)
        checks.ids_in_range("embedding ids", ids, weight.shape[0])
    return Embedding()(weight, ids)
