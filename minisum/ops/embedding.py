"""Embedding lookup: gather rows of a table by integer id.

Forward gathers, backward scatters: every row that was read gets the gradients of all
the places it was read from, added up (an id can appear many times in a batch).
The backward, derived step by step: docs/derivations.md#embedding
"""
from minisum.autograd import Function
from minisum.backend import get_array_module, scatter_add


class Embedding(Function):
    """y[..., :] = W[ids[...], :] with W (V, C), ids (...) integers -> y (..., C).

    dW[v] = sum of dy[...] over the positions where ids == v;  ids get no gradient.
    """

    def forward(self, weight, ids):
        self.ids, self.table_shape = ids, weight.shape
        return weight[ids]  # (..., C)

    def backward(self, gy):
        # BEGIN TASK 3.1 embedding backward (scatter-add)
        xp = get_array_module(gy)
        gw = xp.zeros(self.table_shape, dtype=gy.dtype)  # (V, C)
        scatter_add(gw, self.ids.reshape(-1), gy.reshape(-1, self.table_shape[1]))
        return gw, None
        # END TASK 3.1


def embedding(weight, ids):
    return Embedding()(weight, ids)
