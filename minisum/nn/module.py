"""Module: a container of parameters and sub-modules, and the basic layers.

A module finds its parameters by looking at its own attributes: a tensor with
`requires_grad` is a parameter, a Module is a child whose parameters get its attribute
name as a prefix. That gives PyTorch-style names such as `layers.0.ff.2.weight`.
Parameters are made on the device current when the module is built (minisum.set_device);
`module.to(device)` moves them later, as in PyTorch.
"""
import numpy as np

from minisum import checks, ops
from minisum.autograd import Tensor
from minisum.backend import get_array_module, to_device, to_numpy
from minisum.nn import init


class Module:
    training = True
    inline = ()  # names of children whose parameters are listed without the child's name

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_children(self):
        return [(name, value) for name, value in vars(self).items() if isinstance(value, Module)]

    def named_parameters(self, prefix=""):
        for name, value in vars(self).items():
            if isinstance(value, Tensor) and value.requires_grad:
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix if name in self.inline else prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, device):
        """Move every tensor of the module and its children (parameters with their gradients,
        and buffers) to `device`, "cpu" or "gpu", in place; returns the module, as in PyTorch.
        Make the optimizer after the move: its moments are made where the parameters are."""
        for name, value in vars(self).items():
            if isinstance(value, Tensor):
                value.data = to_device(value.data, device)
                value.grad = None if value.grad is None else to_device(value.grad, device)
            elif isinstance(value, Module):
                value.to(device)
        return self

    def train(self, mode=True):
        self.training = mode
        for _, child in self.named_children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self):
        """Parameter name -> NumPy array (a copy on the host)."""
        return {name: to_numpy(p.data) for name, p in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy arrays into the parameters; the names and shapes must match exactly."""
        own = dict(self.named_parameters())
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"state dict does not match the model: missing {missing}, unexpected {unexpected}")
        for name, p in own.items():
            value = np.asarray(to_numpy(state[name]))
            if value.shape != p.shape:
                raise ValueError(f"state dict entry {name!r} has shape {value.shape}, the model expects {p.shape}")
            # a copy, on the parameter's device: later in-place updates must not write into `state`
            p.data = get_array_module(p.data).array(value, dtype=p.dtype)


class ModuleList(Module):
    """Numbered children: `layers.0`, `layers.1`, ..."""

    def __init__(self, modules):
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __iter__(self):
        return iter(m for _, m in self.named_children())

    def __getitem__(self, i):
        return getattr(self, str(i))

    def __len__(self):
        return len(self.named_children())


class Sequential(ModuleList):
    """Children applied one after the other (names `0`, `1`, ... as in PyTorch)."""

    def forward(self, x):
        for m in self:
            x = m(x)
        return x


class ReLU(Module):
    def forward(self, x):
        return ops.relu(x)


class Linear(Module):
    """y = x W^T + b, weight stored (out, in) as PyTorch does; `init` "torch" or "keras"
    (Glorot fans `keras_fans`, default (in, out): see init.keras_dense)."""

    def __init__(self, in_features, out_features, bias=True, init_style="torch", keras_fans=None):
        checks.sizes(in_features=in_features, out_features=out_features)
        if init_style == "torch":
            self.weight, b = init.torch_linear(out_features, in_features)
        else:
            self.weight, b = init.keras_dense(out_features, in_features, keras_fans)
        if bias:
            self.bias = b

    def forward(self, x):
        return ops.linear(x, self.weight, getattr(self, "bias", None))


class Dense(Linear):
    """Keras' Dense: a Linear with Glorot init, zero bias and an optional ReLU."""

    def __init__(self, in_features, out_features, relu=False, bias=True):
        super().__init__(in_features, out_features, bias=bias, init_style="keras")
        self.relu = relu

    def forward(self, x):
        y = super().forward(x)
        return ops.relu(y) if self.relu else y


class Embedding(Module):
    """A (num, dim) table looked up by integer ids: N(0, 1) as PyTorch, or uniform +-0.05 as Keras."""

    def __init__(self, num, dim, init_style="torch"):
        checks.sizes(num=num, dim=dim)
        self.weight = init.normal((num, dim)) if init_style == "torch" else init.uniform((num, dim), 0.05)

    def forward(self, ids):
        return ops.embedding(self.weight, ids)


class LayerNorm(Module):
    """Layer norm over the last axis; eps 1e-5 as PyTorch (Keras uses 1e-3)."""

    def __init__(self, dim, eps=1e-5):
        checks.sizes(dim=dim)
        checks.real("eps", eps, minimum=0)
        self.weight, self.bias, self.eps = init.ones((dim,)), init.zeros((dim,)), eps

    def forward(self, x):
        return ops.layer_norm(x, self.weight, self.bias, self.eps)


class Dropout(Module):
    def __init__(self, p):
        checks.real("p", p, minimum=0, below=1)  # a layer that drops everything is a mistake in a config
        self.p = p

    def forward(self, x):
        return ops.dropout(x, self.p, self.training)
