"""The two document classifiers of the paper's classification benchmark (docs/paper.md section 2).

Both read (B, T) word ids and return logits: (B, C) for C classes, (B, 1) for a binary
task (one sigmoid unit). Initialisation is Keras' default, as in the reference; the
attention kernels' Glorot fans are Keras 2.12's (the reference's pin), or Keras 3's with
attention_init "keras3" (minisum/nn/attention.py).

    summation:  x * (pos + 1) -> Dense(relu, no bias) -> sum over T -> Dense(C)
    attention:  x + pos -> 4-head attention (key size 256) -> mean over T -> Dense(C)
"""
from minisum import checks
from minisum.nn import Dense, Embedding, Module, MultiHeadAttention, SummationPooling
from minisum.nn import init


def check_sizes(vocab_size, seq_len, d_model, n_classes):
    checks.sizes(vocab_size=vocab_size, seq_len=seq_len, d_model=d_model)
    checks.integer("n_classes", n_classes, minimum=2)


def output_units(n_classes):
    """One sigmoid unit for two classes, else one logit per class."""
    return 1 if n_classes == 2 else n_classes


class SummationClassifier(Module):
    def __init__(self, vocab_size=10000, seq_len=256, d_model=256, n_classes=2):
        check_sizes(vocab_size, seq_len, d_model, n_classes)
        self.embedding = Embedding(vocab_size, d_model, init_style="keras")
        self.summation = SummationPooling(seq_len, d_model, pos_bias=1.0)
        self.head = Dense(d_model, output_units(n_classes))

    def forward(self, ids):
        return self.head(self.summation(self.embedding(ids)))  # (B, C)


class AttentionClassifier(Module):
    def __init__(self, vocab_size=10000, seq_len=256, d_model=256, n_classes=2, n_heads=4, head_dim=256,
                 attention_init="keras"):
        check_sizes(vocab_size, seq_len, d_model, n_classes)
        self.embedding = Embedding(vocab_size, d_model, init_style="keras")
        self.pos = init.normal((seq_len, d_model), std=0.02)
        self.attention = MultiHeadAttention(d_model, n_heads, head_dim=head_dim, init_style=attention_init)
        self.head = Dense(d_model, output_units(n_classes))

    def forward(self, ids):
        x = self.embedding(ids) + self.pos[: ids.shape[1]]  # (B, T, C)
        return self.head(self.attention(x).mean(axis=1))  # (B, C)
