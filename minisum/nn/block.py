"""The post-norm transformer block, with either mixer: the paper's drop-in claim in code.

x = LN1(x + mixer(x));  x = LN2(x + FF(x)),  FF = Linear(d, d) -> ReLU -> Linear(d, d).
The reference keeps the mixer's weights on the block itself (`layers.0.q_proj.weight`,
`layers.0.proj.0.weight`), so the mixer is listed `inline`.
"""
from minisum.nn.attention import MultiHeadAttention
from minisum.nn.module import LayerNorm, Linear, Module, ReLU, Sequential
from minisum.nn.summation import CausalSummation


class Block(Module):
    inline = ("mixer",)

    def __init__(self, d_model, mixer):
        self.mixer = mixer
        self.norm1 = LayerNorm(d_model)
        self.ff = Sequential([Linear(d_model, d_model), ReLU(), Linear(d_model, d_model)])
        self.norm2 = LayerNorm(d_model)

    def forward(self, x, cache=None):
        x = self.norm1(x + self.mixer(x, cache))
        return self.norm2(x + self.ff(x))


def summation_block(d_model):
    return Block(d_model, CausalSummation(d_model))


def attention_block(d_model, n_heads):
    return Block(d_model, MultiHeadAttention(d_model, n_heads, causal=True))
