"""The output layer and the cross-entropy fused, walking the rows in chunks.

A language model's last step is logits = x W^T + b over a vocabulary of V words, then the
cross-entropy. Written as two ops it holds (B, T, V) logits, their softmax and its
gradient: at the paper's V 50,257, batch 8 and context 256 that is 411 MB each, and the
passes over them took as long as the matrix products. Fused, it takes a chunk of rows at
a time (a few hundred tokens), and within the chunk's (rows, V) buffer it computes the
logits, their log-sum-exp and loss, the argmax hits, and turns the logits into their
gradient in place, from which dX, dW and db (those that are wanted) are accumulated before
the next chunk reuses the buffer. The (B, T, V) logits never exist. This is the technique of "Cut Your
Losses in Large-Vocabulary Language Models" (Wijmans et al., 2024) and of the fused linear
cross-entropy kernels of GPU training libraries.

The gradients are computed in the forward pass, while each chunk's logits are at hand,
for an upstream gradient of 1; backward only scales them. Computing them later would
need the logits again: one more (N, C) x (C, V) product.
Its tests compare it with the unfused ops.linear, then ops.cross_entropy (tests/test_linear_cross_entropy.py).
The backward, derived step by step: docs/derivations.md#softmax-and-cross-entropy
"""
import math

import numpy as np

from minisum.autograd import Function, Tensor, is_grad_enabled
from minisum.backend import get_array_module
from minisum.ops.losses import check_targets, nan_where_out_of_range

CHUNK_ELEMENTS = 2 ** 24  # logits per chunk, 64 MB in float32: 334 rows at V 50,257
VOCAB_SLICE = 8192  # dW gets a chunk's share this many vocabulary rows at a time: a 16 MB temporary, not W's size


class LinearCrossEntropy(Function):
    """L = sum_r w_r (lse(z_r) - z_r[y_r]) with z_r = W x_r + b the logits of row r,
    lse(z) = log sum_v e^(z_v), and w_r = 1/M for the M rows whose target is kept, 0 for pads.

    x (..., C), W (V, C) as nn.Linear stores it, b (V,), targets y (...) integers.
    With softmax(z) = e^(z - lse(z)), the derivative of lse is the softmax, so
        g_r = dL/dz_r = w_r (softmax(z_r) - onehot(y_r))          (V,) per row, 0 for pads
        dx_r = W^T g_r, i.e. dX = G W                              (N, C)
        dW = sum_r g_r x_r^T = G^T X                               (V, C)
        db = sum_r g_r                                             (V,)
    G (N, V) is never held whole: each chunk of rows adds its share to dX, dW and db.
    L is a scalar, so an upstream gradient gy scales all three.
    """

    hands_over_grads = True  # backward returns the arrays forward filled, and forgets them

    def __init__(self, ignore_index=None, wants_grads=(False, False, False), chunk_rows=None):
        """wants_grads: whether x, W and b need a gradient (none under no_grad): forward computes
        only those; dW, as large as W, exists only when W requires a gradient."""
        self.ignore_index, self.wants_grads, self.chunk_rows = ignore_index, wants_grads, chunk_rows

    def forward(self, targets, x, weight, bias=None):  # targets first, so that the bias may be left out
        xp = get_array_module(x)
        V, C = weight.shape
        self.x_shape, self.has_bias = x.shape, bias is not None
        x = x.reshape(-1, C)  # (N, C)
        y = targets.reshape(-1)  # (N,)
        keep = xp.ones(y.shape, dtype=bool) if self.ignore_index is None else y != self.ignore_index
        count = xp.maximum(keep.sum(), 1).astype(x.dtype)  # stays on the device: no wait for the GPU
        rows = rows_to_compute(keep)  # (K,): the kept rows, or all of them
        x_k, keep_k = x[rows], keep[rows]  # (K, C), (K,)
        y_k = xp.where(keep_k, y[rows], 0)  # a pad's target may be no valid index; its weight is 0
        w_k = keep_k / count  # (K,)
        poison = nan_where_out_of_range(xp, y, keep, V, x.dtype)  # GPU targets out of range: a NaN loss
        loss = xp.zeros((), dtype=x.dtype) if poison is None else poison.sum()

        step = self._rows_per_chunk(len(rows), V)
        buffer = xp.empty((min(step, len(rows)), V), dtype=x.dtype)  # reused by every chunk
        hits = xp.zeros((), dtype=np.int64)
        wants_x, wants_w, wants_b = self.wants_grads
        gx_k = xp.empty_like(x_k) if wants_x else None  # (K, C)
        gw = xp.zeros_like(weight) if wants_w else None  # (V, C)
        gb = xp.zeros_like(bias) if wants_b else None  # (V,)
        for start in range(0, len(rows), step):
            chunk = slice(start, start + step)
            xc, yc, wc = x_k[chunk], y_k[chunk], w_k[chunk]  # (n, C), (n,), (n,)
            n = len(xc)
            at = xp.arange(n)
            z = xp.matmul(xc, weight.T, out=buffer[:n])  # (n, V) logits
            if bias is not None:
                z += bias
            best = z.argmax(axis=1)  # (n,)
            hits += ((best == yc) & keep_k[chunk]).sum()
            top, target = z[at, best], z[at, yc]  # (n,) the largest logit, the target's logit
            z -= top[:, None]
            xp.exp(z, out=z)  # (n, V) e^(z - max): at most 1, no overflow
            total = z.sum(axis=1)  # (n,)
            loss += (wc * (xp.log(total) + top - target)).sum()  # lse = max + log total
            if not any(self.wants_grads):
                continue
            # The block receives z = e^(logits - max) (n, V) and total (n,), its sum per row; the
            # rows' weights wc (n,) and targets yc (n,), at = arange(n), the rows xc (n, C), the
            # weight (V, C); and gx_k, gw, gb, each None when not wanted. It leaves this chunk's
            # dX in gx_k[chunk] and adds its share of dW to gw and of db to gb. z may be overwritten.
            # BEGIN TASK 2.1
            z *= (wc / total)[:, None]  # w softmax(z)
            z[at, yc] -= wc  # g = w (softmax(z) - onehot(y)), in place of the logits
            if gx_k is not None:
                xp.matmul(z, weight, out=gx_k[chunk])
            if gw is not None:
                for v in range(0, V, VOCAB_SLICE):
                    gw[v:v + VOCAB_SLICE] += z[:, v:v + VOCAB_SLICE].T @ xc
            if gb is not None:
                gb += z.sum(axis=0)
            # END TASK 2.1

        self.hits = hits
        gx = None
        if gx_k is not None:
            gx = xp.zeros_like(x)
            gx[rows] = gx_k
            gx = gx.reshape(self.x_shape)
        self.grads = [gx, gw, gb] if self.has_bias else [gx, gw]
        return loss

    def backward(self, gy):
        if self.grads is None:
            raise RuntimeError("linear_cross_entropy: backward() can run once per forward "
                               "(its saved gradients are handed over); call the loss again")
        grads, self.grads = self.grads, None  # handed over: dW is as large as W
        for g in grads:
            if g is not None:
                g *= gy
        return (None, *grads)  # targets get none

    def _rows_per_chunk(self, rows, vocab_size):
        """Equal chunks of at most chunk_rows (default: CHUNK_ELEMENTS logits) rows."""
        most = self.chunk_rows or max(1, CHUNK_ELEMENTS // vocab_size)
        chunks = max(1, math.ceil(rows / most))
        return max(1, math.ceil(rows / chunks))


def rows_to_compute(keep):
    """The rows whose logits get computed: on the CPU only the kept ones, so padding costs
    nothing. On the GPU every row, the pads with weight 0: gathering the kept rows would make
    the host wait for the device (their number sizes the result), once per step."""
    xp = get_array_module(keep)
    if xp is not np:
        return xp.arange(keep.size)
    return np.flatnonzero(keep)


def linear_cross_entropy(x, weight, bias, targets, ignore_index=None, chunk_rows=None):
    """The mean cross-entropy of the logits x W^T + b against `targets`, over the targets that
    are not `ignore_index`, and how many of those the argmax of the logits gets right.

    x (..., C), weight (V, C), bias (V,) or None, targets (...) integers in [0, V) or
    ignore_index -> (loss: 0-d Tensor, hits: 0-d integer array on the device). Only the
    gradients of the inputs that require one are computed; under no_grad none.
    """
    V, C = weight.shape
    x_shape = tuple(x.shape)
    if x_shape[-1:] != (C,):
        raise ValueError(f"linear_cross_entropy: input of shape {x_shape} does not fit weight of shape "
                         f"{tuple(weight.shape)} (vocabulary, features): its last axis must be {C}")
    if bias is not None and tuple(bias.shape) != (V,):
        raise ValueError(f"linear_cross_entropy: bias of shape {tuple(bias.shape)} must have shape ({V},) or be None")
    targets = check_targets("linear_cross_entropy", (*x_shape[:-1], V), targets, ignore_index)
    wants = tuple(is_grad_enabled() and isinstance(t, Tensor) and t.requires_grad for t in (x, weight, bias))
    fn = LinearCrossEntropy(ignore_index, wants_grads=wants, chunk_rows=chunk_rows)
    loss = fn(targets, x, weight) if bias is None else fn(targets, x, weight, bias)
    return loss, fn.hits
