"""Parameter initialisation, as the two reference codebases do it.

The language model follows PyTorch's defaults, the classifiers and regressors Keras'
(docs/paper.md). Values are drawn on the host from minisum's seeded generator and then moved
to the device, so a seed gives the same model on CPU and GPU. That device is the one current
when the parameter is made: call minisum.set_device before building a model, or move the
model afterwards with `model.to(device)`.
"""
import math

import numpy as np

from minisum.autograd import Tensor
from minisum.backend import host_rng, to_device


def parameter(array):
    """A leaf tensor that the optimizer updates."""
    return Tensor(to_device(array.astype(np.float32)), requires_grad=True)


def uniform(shape, bound):
    return parameter(host_rng().uniform(-bound, bound, size=shape))


def normal(shape, std=1.0):
    return parameter(host_rng().normal(0.0, std, size=shape))


def zeros(shape):
    return parameter(np.zeros(shape))


def ones(shape):
    return parameter(np.ones(shape))


def torch_linear(out_features, in_features):
    """PyTorch nn.Linear: weight and bias uniform in +-1/sqrt(fan_in)."""
    bound = 1 / math.sqrt(in_features)
    return uniform((out_features, in_features), bound), uniform((out_features,), bound)


def keras_dense(out_features, in_features, fans=None):
    """Keras Dense: Glorot uniform weight, limit sqrt(6 / (fan_in + fan_out)); zero bias.

    fans (fan_in, fan_out) default to (in_features, out_features); Keras 2.12's attention
    kernels have others (`keras2_fans`)."""
    fan_in, fan_out = fans or (in_features, out_features)
    limit = math.sqrt(6 / (fan_in + fan_out))
    return uniform((out_features, in_features), limit), zeros((out_features,))


def keras2_fans(kernel_shape):
    """Keras 2.12's `compute_fans` for a kernel of 3 or more dimensions, written for
    convolutions: receptive field = prod(shape[:-2]), fan_in = shape[-2] * field,
    fan_out = shape[-1] * field. Its MultiHeadAttention kernels are such 3-D shapes:
    q/k/v (d, heads, key) and output (heads, key, d), so their fans are not d and
    heads * key (Keras 3 counts them so: `keras_dense`'s default)."""
    field = math.prod(kernel_shape[:-2])
    return kernel_shape[-2] * field, kernel_shape[-1] * field
