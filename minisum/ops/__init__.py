"""Every differentiable operation of minisum, one file per family.

    arithmetic   add sub mul div neg pow abs, and sum_to (undoing broadcasting)
    elementwise  exp log tanh sigmoid relu
    reductions   sum mean max
    shape        reshape transpose getitem concat
    matmul       matmul (batched) and the fused linear layer
    embedding    gather rows by id; scatter-add backward
    cumsum       the causal summation (running sum along an axis)
    softmax      softmax log_softmax
    layernorm    fused layer norm
    attention    fused multi-head scaled dot-product attention
    masking      where masked_fill dropout
    losses       cross_entropy (ignore_index), binary_cross_entropy_with_logits, mse_loss
    linear_cross_entropy  the output layer and cross-entropy fused, in chunks of rows
    composite    composite twins of the fused ops (`<op>_composite`), for the tests
"""
from minisum.ops.arithmetic import abs, add, div, mul, neg, pow, sub, sum_to
from minisum.ops.attention import attention
from minisum.ops.cumsum import cumsum
from minisum.ops.elementwise import exp, log, relu, sigmoid, tanh
from minisum.ops.embedding import embedding
from minisum.ops.layernorm import layer_norm
from minisum.ops.linear_cross_entropy import linear_cross_entropy
from minisum.ops.losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss
from minisum.ops.masking import dropout, masked_fill, where
from minisum.ops.matmul import linear, matmul
from minisum.ops.reductions import max, mean, sum
from minisum.ops.shape import concat, getitem, reshape, transpose
from minisum.ops.softmax import log_softmax, softmax

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "abs", "sum_to", "exp", "log", "tanh", "sigmoid", "relu",
    "sum", "mean", "max", "reshape", "transpose", "getitem", "concat", "matmul", "linear",
    "embedding", "cumsum", "softmax", "log_softmax", "layer_norm", "attention", "where",
    "masked_fill", "dropout", "cross_entropy", "binary_cross_entropy_with_logits", "mse_loss",
    "linear_cross_entropy",
]
