"""The paper's language model in PyTorch, as the reference code writes it (docs/paper.md section 1).

The one PyTorch model of the project: the parity tests compare minisum's LanguageModel
with it, bench/train_step.py times it, and minisum/torch_convert.py moves checkpoints into
it. Its parameter names are the reference's (`layers.0.proj.0.weight`, `layers.2.q_proj.bias`,
...), the same as minisum's, so a state dict loads either way with strict=True.

    post-norm blocks:  x = LN1(x + mix(x)),  x = LN2(x + FF(x)),  FF = Linear -> ReLU -> Linear
    summation mix:     out_proj(cumsum(relu(W2 relu(W1 x))))
    attention mix:     q, k, v projections, scores q.k / sqrt(D), future masked to -1e9, softmax
    input:             tok * (pos + 2) for summation and hybrid, tok + pos for attention

Needs PyTorch, which minisum never depends on: `import minisum` does not import this file.
"""
import math

import torch
from torch import nn


class Block(nn.Module):
    """Post-norm: x = LN1(x + mix(x)), then x = LN2(x + FF(x)) with FF = Linear -> ReLU -> Linear."""

    def __init__(self, d):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))

    def forward(self, x):
        x = self.norm1(x + self.mix(x))
        return self.norm2(x + self.ff(x))


class SummationBlock(Block):
    def __init__(self, d):
        super().__init__(d)
        self.proj = nn.Sequential(nn.Linear(d, d, bias=False), nn.ReLU(), nn.Linear(d, d, bias=False), nn.ReLU())
        self.out_proj = nn.Linear(d, d)

    def mix(self, x):
        return self.out_proj(torch.cumsum(self.proj(x), dim=1))


class AttentionBlock(Block):
    def __init__(self, d, n_heads):
        super().__init__(d)
        self.n_heads = n_heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def mix(self, x):
        B, T, d = x.shape
        D = d // self.n_heads

        def heads(a):  # (B, T, d) -> (B, H, T, D)
            return a.view(B, T, self.n_heads, D).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(D)  # (B, H, T, T)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        probs = torch.softmax(scores.masked_fill(future, -1e9), dim=-1)
        return self.out_proj((probs @ v).transpose(1, 2).reshape(B, T, d))


class TorchLanguageModel(nn.Module):
    """Same constructor as minisum.models.LanguageModel: TorchLanguageModel(**model.config)."""

    def __init__(self, vocab_size, d_model=512, n_layers=4, n_heads=8, max_len=256, mixer="hybrid"):
        super().__init__()
        kinds = {"attention": ["attention"] * n_layers, "summation": ["summation"] * n_layers,
                 "hybrid": ["summation"] * (n_layers - 1) + ["attention"]}[mixer]
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.pos_embedding = nn.Embedding(max_len, d_model)
        self.layers = nn.ModuleList([AttentionBlock(d_model, n_heads) if kind == "attention"
                                     else SummationBlock(d_model) for kind in kinds])
        self.final_norm = nn.LayerNorm(d_model)
        self.output_projection = nn.Linear(d_model, vocab_size)
        self.multiplicative = mixer != "attention"

    def forward(self, ids):
        """ids (B, T) int64 -> logits (B, T, V)."""
        tok = self.token_embedding(ids)  # (B, T, C)
        pos = self.pos_embedding(torch.arange(ids.shape[1], device=ids.device))  # (T, C)
        x = tok * (pos + 2.0) if self.multiplicative else tok + pos
        for layer in self.layers:
            x = layer(x)
        return self.output_projection(self.final_norm(x))
