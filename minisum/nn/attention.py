"""Multi-head self-attention on the fused attention op (minisum/ops/attention.py).

Used as the mixer of the attention and hybrid language models (causal, head size d/h,
PyTorch init) and in the classifiers and the multimodal model (not causal, Keras'
MultiHeadAttention with its own key size per head and Glorot init).
"""
from minisum import checks, ops
from minisum.nn import init
from minisum.nn.module import Linear, Module

# "keras": Keras 2.12 (the reference's pin), Glorot fans of the 3-D kernels (init.keras2_fans);
# "keras3": Keras 3, fans of the 2-D matrices (d, h * head_dim), much larger q/k/v bounds.
INIT_STYLES = ("torch", "keras", "keras3")


class MultiHeadAttention(Module):
    """q, k, v = x W_q, x W_k, x W_v (each d -> h * head_dim, with bias);
    out = attention(q, k, v) W_o (h * head_dim -> d, with bias).
    """

    def __init__(self, d_model, n_heads, head_dim=None, causal=False, init_style="torch"):
        checks.sizes(d_model=d_model, n_heads=n_heads)
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
            head_dim = d_model // n_heads
        checks.sizes(head_dim=head_dim)
        if init_style not in INIT_STYLES:
            raise ValueError(f"init_style must be one of {', '.join(INIT_STYLES)}, got {init_style!r}")
        inner = n_heads * head_dim
        in_fans = out_fans = None
        if init_style == "keras":
            in_fans = init.keras2_fans((d_model, n_heads, head_dim))  # Keras' q/k/v kernel shape
            out_fans = init.keras2_fans((n_heads, head_dim, d_model))  # its output kernel shape
        style = "torch" if init_style == "torch" else "keras"
        self.q_proj = Linear(d_model, inner, init_style=style, keras_fans=in_fans)
        self.k_proj = Linear(d_model, inner, init_style=style, keras_fans=in_fans)
        self.v_proj = Linear(d_model, inner, init_style=style, keras_fans=in_fans)
        self.out_proj = Linear(inner, d_model, init_style=style, keras_fans=out_fans)
        self.n_heads, self.causal = n_heads, causal

    def forward(self, x, cache=None):
        """x (B, T, C). With a `cache` dict, keys and values of earlier calls are kept in it
        and attended to: incremental generation with a key/value cache."""
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)  # (B, T, h*hd)
        if cache is not None:
            if "k" in cache:
                k = ops.concat([cache["k"], k], axis=1)  # (B, S, h*hd)
                v = ops.concat([cache["v"], v], axis=1)
            cache["k"], cache["v"] = k.detach(), v.detach()
        return self.out_proj(ops.attention(q, k, v, self.n_heads, causal=self.causal))
