"""The paper's language model in PyTorch, written as the reference code writes it, so that
bench/train_step.py can time minisum against it in the same run.

Same structure as minisum.models.LanguageModel (PAPER.md section 1): post-norm blocks,
attention with explicit scores and a -1e9 causal mask, summation as relu(W2 relu(W1 x))
followed by a cumulative sum, tok * (pos + 2) input for summation and hybrid.
Imported only when PyTorch is installed; minisum itself never imports torch.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.heads = heads

    def forward(self, x):
        B, T, C = x.shape
        def split(t):
            return t.view(B, T, self.heads, C // self.heads).transpose(1, 2)  # (B, H, T, D)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // self.heads)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        probs = F.softmax(scores.masked_fill(mask, -1e9), dim=-1)
        return self.out_proj((probs @ v).transpose(1, 2).reshape(B, T, C))


class Summation(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(d, d, bias=False), nn.ReLU(), nn.Linear(d, d, bias=False), nn.ReLU())
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        return self.out_proj(torch.cumsum(self.proj(x), dim=1))


class Block(nn.Module):
    def __init__(self, d, mixer):
        super().__init__()
        self.mixer, self.norm1, self.norm2 = mixer, nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))

    def forward(self, x):
        x = self.norm1(x + self.mixer(x))
        return self.norm2(x + self.ff(x))


class TorchLanguageModel(nn.Module):
    def __init__(self, vocab_size, d_model, n_layers, n_heads, max_len, mixer):
        super().__init__()
        kinds = {"attention": ["attention"] * n_layers, "summation": ["summation"] * n_layers,
                 "hybrid": ["summation"] * (n_layers - 1) + ["attention"]}[mixer]
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.pos_embedding = nn.Embedding(max_len, d_model)
        self.layers = nn.ModuleList([Block(d_model, Attention(d_model, n_heads) if kind == "attention"
                                           else Summation(d_model)) for kind in kinds])
        self.final_norm = nn.LayerNorm(d_model)
        self.output_projection = nn.Linear(d_model, vocab_size)
        self.multiplicative = mixer != "attention"

    def forward(self, ids):
        tok = self.token_embedding(ids)
        pos = self.pos_embedding(torch.arange(ids.shape[1], device=ids.device))
        x = tok * (pos + 2.0) if self.multiplicative else tok + pos
        for layer in self.layers:
            x = layer(x)
        return self.output_projection(self.final_norm(x))


def train_step_fn(config, mixer, ids, threads):
    """A function that runs one training step (forward, cross-entropy, backward, Adam) of
    the PyTorch model on `ids` (B, T + 1) NumPy ints."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TorchLanguageModel(mixer=mixer, **config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    batch = torch.from_numpy(ids)
    inputs, targets = batch[:, :-1], batch[:, 1:]

    def step():
        loss = F.cross_entropy(model(inputs).reshape(-1, config["vocab_size"]), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step
