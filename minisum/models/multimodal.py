"""The two text + numbers regressors of the multimodal benchmark (docs/paper.md section 3).

Inputs: word ids (B, T) and numeric features (B, F), F = 4 in the paper; output (B, 1).
Each numeric feature has its own branch Dense(256, relu) -> Dense(256, relu).

    attention fusion:  text through attention + LayerNorm, mean-pooled (256), concatenated
                       with the F branch outputs (F * 256) -> 1,280 -> head
    summation fusion:  text through the summation layer -> Dense(256, relu); the branch
                       outputs are added -> Dense -> Dense; text + numbers added in one
                       256-d latent -> head
    head:              Dense(256, relu) -> Dense(64, relu) -> Dropout(0.2) -> Dense(1)

Keras initialisation; the attention kernels' Glorot fans are Keras 2.12's (the reference's
pin), or Keras 3's with attention_init "keras3" (minisum/nn/attention.py).
"""
from minisum import checks, ops
from minisum.nn import Dense, Dropout, Embedding, LayerNorm, Module, ModuleList, MultiHeadAttention, Sequential
from minisum.nn import SummationPooling, init

KERAS_LAYER_NORM_EPS = 1e-3


def numeric_branches(n_features, width):
    return ModuleList([Sequential([Dense(1, width, relu=True), Dense(width, width, relu=True)])
                       for _ in range(n_features)])


def regression_head(in_features, dropout):
    return Sequential([Dense(in_features, 256, relu=True), Dense(256, 64, relu=True), Dropout(dropout), Dense(64, 1)])


def branch_outputs(branches, numbers):
    """numbers (B, F) -> F tensors (B, width), one per feature's own branch."""
    return [branch(numbers[:, i:i + 1]) for i, branch in enumerate(branches)]


class AttentionFusionRegressor(Module):
    def __init__(self, vocab_size, seq_len=300, d_model=256, n_features=4, n_heads=4, head_dim=64, dropout=0.2,
                 attention_init="keras"):
        checks.sizes(vocab_size=vocab_size, seq_len=seq_len, d_model=d_model, n_features=n_features)
        checks.real("dropout", dropout, minimum=0, below=1)
        self.embedding = Embedding(vocab_size, d_model, init_style="keras")
        self.pos = init.normal((seq_len, d_model), std=0.02)
        self.attention = MultiHeadAttention(d_model, n_heads, head_dim=head_dim, init_style=attention_init)
        self.norm = LayerNorm(d_model, eps=KERAS_LAYER_NORM_EPS)
        self.branches = numeric_branches(n_features, d_model)
        self.head = regression_head(d_model * (1 + n_features), dropout)

    def forward(self, ids, numbers):
        x = self.embedding(ids) + self.pos[: ids.shape[1]]  # (B, T, C)
        text = self.norm(x + self.attention(x)).mean(axis=1)  # (B, C)
        fused = ops.concat([text] + branch_outputs(self.branches, numbers), axis=1)  # (B, C * (1 + F))
        return self.head(fused)  # (B, 1)


class SummationFusionRegressor(Module):
    def __init__(self, vocab_size, seq_len=300, d_model=256, n_features=4, dropout=0.2):
        checks.sizes(vocab_size=vocab_size, seq_len=seq_len, d_model=d_model, n_features=n_features)
        checks.real("dropout", dropout, minimum=0, below=1)
        self.embedding = Embedding(vocab_size, d_model, init_style="keras")
        self.summation = SummationPooling(seq_len, d_model, pos_bias=1.0)
        self.text_dense = Dense(d_model, d_model, relu=True)
        self.branches = numeric_branches(n_features, d_model)
        self.numeric = Sequential([Dense(d_model, d_model, relu=True), Dense(d_model, d_model, relu=True)])
        self.head = regression_head(d_model, dropout)

    def forward(self, ids, numbers):
        text = self.text_dense(self.summation(self.embedding(ids)))  # (B, C)
        branches = branch_outputs(self.branches, numbers)
        numeric = branches[0]
        for b in branches[1:]:
            numeric = numeric + b
        return self.head(text + self.numeric(numeric))  # (B, 1)
