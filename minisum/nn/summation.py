"""The summation layer: the idea of the paper in a few lines.

Instead of letting every token attend to every other token (O(n^2 d)), each token is
1. modulated by a learned positional encoding:  x_t * (pos_t + bias),
2. projected through bias-free layers with a ReLU:  p_t = relu(W x_t) in the classifiers,
   p_t = relu(W2 relu(W1 x_t)) in the language model,
3. aggregated by a plain sum:  s = sum_t p_t  (classification), or the running sum
   s_t = sum_{u<=t} p_u  (causal language modelling).
The mixing costs O(n d) where attention's costs O(n^2 d) (the projections cost O(n d^2) in
both). The running sum is a recurrence with a d-sized state, so generation keeps O(d) state
per layer and no cache that grows, and each new token costs the same O(d^2) per layer (its
projections) whatever its position. (The hybrid model's one attention layer does keep a
key/value cache that grows with the text.)
"""
from minisum import checks, ops
from minisum.nn import init
from minisum.nn.module import Dense, Linear, Module, ReLU, Sequential


def positional_modulation(tokens, positions, bias):
    """x = tok * (pos + bias): tokens (B, T, C), positions (T, C). In the classifiers the
    table starts near 0 (N(0, 0.02)), so bias 1.0 sets the initial scale; in the language
    model it is an Embedding, N(0, 1) at init as in PyTorch, so the scale pos + 2.0 starts
    spread around 2 (from about -1 to 5), not at 2."""
    return tokens * (positions + bias)


class CausalSummation(Module):
    """The summation mixer of the language model (a drop-in for causal self-attention).

    p = relu(W2 relu(W1 x)),  s_t = p_1 + ... + p_t,  out = s W_o^T + b_o.
    x arrives already modulated, x = tok * (pos + 2): step 1, the positional modulation,
    happens once for the whole model in LanguageModel.embed, not in each layer.
    Parameter names follow the reference: proj.0, proj.2, out_proj.
    """

    def __init__(self, d_model):
        checks.sizes(d_model=d_model)
        self.proj = Sequential([Linear(d_model, d_model, bias=False), ReLU(),
                                Linear(d_model, d_model, bias=False), ReLU()])
        self.out_proj = Linear(d_model, d_model)

    def forward(self, x, cache=None):
        """x (B, T, C). With a `cache` dict, continue the running sum from cache["sum"] (B, C)
        and leave the new total there: that is incremental generation."""
        p = self.proj(x)  # (B, T, C)
        s = ops.cumsum(p, axis=1)  # (B, T, C)
        if cache is not None:
            if "sum" in cache:
                s = s + cache["sum"].reshape(s.shape[0], 1, s.shape[2])
            cache["sum"] = s[:, -1].detach()  # (B, C): the whole state, whatever the length
        return self.out_proj(s)


class SummationPooling(Module):
    """The summation layer of the classifiers and the multimodal model (Keras reference).

    x (B, T, C) token embeddings -> relu(W (x * (pos + 1))) summed over T -> (B, C).
    """

    def __init__(self, seq_len, d_model, pos_bias=1.0):
        checks.sizes(seq_len=seq_len, d_model=d_model)
        self.pos = init.normal((seq_len, d_model), std=0.02)
        self.dense = Dense(d_model, d_model, relu=True, bias=False)
        self.pos_bias = pos_bias

    def forward(self, x):
        modulated = positional_modulation(x, self.pos[: x.shape[1]], self.pos_bias)  # (B, T, C)
        return self.dense(modulated).sum(axis=1)  # (B, C)
