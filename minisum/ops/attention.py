"""Multi-head scaled dot-product attention, fused into one forward and one backward.

For each head: S = Q K^T / sqrt(D), P = softmax(S) (causal: future positions masked),
O = P V. This is the one attention layer of the hybrid model; as one op it stores only
P, Q, K, V instead of a dozen intermediates. `attention_composite` in ops/composite.py
(its composite twin) builds the same thing from small ops for the tests.
The backward, derived step by step: docs/derivations.md#attention
"""
import math

from minisum.autograd import Function
from minisum.backend import get_array_module
from minisum.ops.softmax import softmax_forward

MASKED_SCORE = -1e9  # the reference code's value for masked scores


def split_heads(x, n_heads):
    """(B, T, H*D) -> (B, H, T, D)."""
    B, T, HD = x.shape
    return x.reshape(B, T, n_heads, HD // n_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(B, H, T, D) -> (B, T, H*D)."""
    B, H, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * D)


def causal_mask(xp, T, S=None):
    """True above the diagonal: query t may not look at key s > t (keys may be fewer or more
    than queries when a cache holds earlier keys: query t sits at absolute position S - T + t)."""
    S = T if S is None else S
    return xp.arange(S)[None, :] > (xp.arange(T)[:, None] + (S - T))  # (T, S)


def attention_forward(q, k, v, causal):
    """q (B, H, T, D), k and v (B, H, S, D) -> out (B, H, T, D), probs (B, H, T, S)."""
    # BEGIN TASK 4.1 attention forward and backward
    xp = get_array_module(q)
    scale = q.dtype.type(1 / math.sqrt(q.shape[-1]))
    scores = (q * scale) @ k.swapaxes(-1, -2)  # (B, H, T, S); scaling q is cheaper than scaling S
    if causal:
        # adding -1e9 rather than assigning it: one pass, no boolean indexing; exp gives 0 either way
        scores += xp.where(causal_mask(xp, q.shape[2], k.shape[2]), q.dtype.type(MASKED_SCORE), q.dtype.type(0))
    probs = softmax_forward(scores)
    return probs @ v, probs
    # END TASK 4.1


def attention_backward(gout, q, k, v, probs):
    """Gradients of O = softmax(Q K^T / sqrt(D)) V:
        dV = P^T dO,   dP = dO V^T,   dS = P (dP - sum(dP P)) (softmax's backward),
        dQ = dS K / sqrt(D),   dK = dS^T Q / sqrt(D).
    Masked scores have P = 0, so dS is 0 there without looking at the mask again.
    """
    # BEGIN TASK 4.1
    scale = q.dtype.type(1 / math.sqrt(q.shape[-1]))
    gv = probs.swapaxes(-1, -2) @ gout  # (B, H, S, D)
    gscores = gout @ v.swapaxes(-1, -2)  # (B, H, T, S): dP, turned into dS in place below
    gscores -= (gscores * probs).sum(axis=-1, keepdims=True)  # softmax backward: P (dP - sum(dP P))
    gscores *= probs
    gq = (gscores @ k) * scale  # (B, H, T, D)
    gk = (gscores.swapaxes(-1, -2) @ q) * scale  # (B, H, S, D)
    return gq, gk, gv
    # END TASK 4.1


class Attention(Function):
    """out = concat over heads of softmax(q_h k_h^T / sqrt(D)) v_h.

    q (B, T, H*D), k and v (B, S, H*D) -> out (B, T, H*D); see `attention_backward`.
    """

    def __init__(self, n_heads, causal):
        self.n_heads, self.causal = n_heads, causal

    def forward(self, q, k, v):
        self.q, self.k, self.v = (split_heads(a, self.n_heads) for a in (q, k, v))
        out, self.probs = attention_forward(self.q, self.k, self.v, self.causal)
        return merge_heads(out)  # (B, T, H*D)

    def backward(self, gout):
        gq, gk, gv = attention_backward(split_heads(gout, self.n_heads), self.q, self.k, self.v, self.probs)
        return merge_heads(gq), merge_heads(gk), merge_heads(gv)


def attention(q, k, v, n_heads, causal=False):
    """Multi-head scaled dot-product attention on (B, T, H*D) inputs."""
    return Attention(n_heads, causal)(q, k, v)
