"""Composite twins of the fused ops, built from small ops, for the tests to compare against.

Each `<op>_composite` computes what its fused op computes (softmax cross-entropy, layer
norm, attention, causal summation) the way a textbook writes it; autograd differentiates
it op by op. Slow and memory-hungry on purpose: they are the specification.
"""
import math

from minisum.autograd import Tensor
from minisum.backend import get_array_module
from minisum.ops.arithmetic import add, div, mul, sub
from minisum.ops.attention import MASKED_SCORE, causal_mask
from minisum.ops.elementwise import exp, log
from minisum.ops.masking import masked_fill
from minisum.ops.matmul import matmul
from minisum.ops.reductions import max, mean, sum
from minisum.ops.shape import getitem, reshape, transpose


def softmax_composite(x):
    e = exp(sub(x, max(x, axis=-1, keepdims=True).detach()))
    return div(e, sum(e, axis=-1, keepdims=True))


def log_softmax_composite(x):
    return log(softmax_composite(x))


def cross_entropy_composite(logits, targets, ignore_index=None):
    """-mean of log softmax(z)[y] over the rows whose target is kept."""
    xp = get_array_module(logits.data)
    V = logits.shape[-1]
    y = (targets.data if isinstance(targets, Tensor) else targets).reshape(-1)
    kept = xp.nonzero(y != ignore_index)[0] if ignore_index is not None else xp.arange(y.size)
    logp = log_softmax_composite(reshape(logits, -1, V))
    picked = getitem(logp, (kept, y[kept]))
    return div(sum(picked), -float(kept.size))


def layer_norm_composite(x, weight, bias, eps=1e-5):
    centered = sub(x, mean(x, axis=-1, keepdims=True))
    var = mean(mul(centered, centered), axis=-1, keepdims=True)
    return add(mul(div(centered, (var + eps) ** 0.5), weight), bias)


def attention_composite(q, k, v, n_heads, causal=False):
    def heads(x):  # (B, T, H*D) -> (B, H, T, D)
        B, T, HD = x.shape
        return transpose(reshape(x, B, T, n_heads, HD // n_heads), 0, 2, 1, 3)

    qh, kh, vh = heads(q), heads(k), heads(v)
    scores = div(matmul(qh, transpose(kh, 0, 1, 3, 2)), math.sqrt(qh.shape[-1]))
    if causal:
        scores = masked_fill(scores, causal_mask(get_array_module(q.data), q.shape[1], k.shape[1]), MASKED_SCORE)
    out = matmul(softmax_composite(scores), vh)  # (B, H, T, D)
    B, H, T, D = out.shape
    return reshape(transpose(out, 0, 2, 1, 3), B, T, H * D)


def cumsum_composite(x, axis=1):
    """s = L x along `axis`, with L the lower-triangular matrix of ones."""
    xp = get_array_module(x.data)
    T = x.shape[axis]
    lower = xp.tril(xp.ones((T, T), dtype=x.dtype))
    moved = transpose(x, *_axis_to_front_but_one(x.ndim, axis))
    return transpose(matmul(lower, moved), *_inverse(_axis_to_front_but_one(x.ndim, axis)))


def _axis_to_front_but_one(ndim, axis):
    """A permutation putting `axis` second to last, so a (T, T) matrix can multiply it."""
    axis %= ndim
    others = [a for a in range(ndim) if a != axis]
    return others[:-1] + [axis] + others[-1:] if others else [axis]


def _inverse(perm):
    inverse = [0] * len(perm)
    for i, a in enumerate(perm):
        inverse[a] = i
    return inverse

