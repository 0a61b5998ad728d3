"""minisum: summation-based transformers on a hand-written autograd engine.

Start reading at:
    backend.py        NumPy or CuPy
    autograd.py       Tensor, Function, backward()
    ops/              every op with its hand-written backward
    nn/summation.py   the summation mixer, the idea of the paper
    models/           the paper's language model, classifiers and multimodal regressors
"""
from minisum.autograd import Function, Tensor, from_numpy, is_grad_enabled, no_grad, tensor
from minisum.backend import get_device, seed, set_device, to_device, to_numpy
from minisum.errors import UserError
from minisum.gradcheck import GradcheckError, gradcheck
from minisum.graph_drawing import draw_graph

__all__ = ["Function", "Tensor", "tensor", "from_numpy", "no_grad", "is_grad_enabled", "gradcheck", "GradcheckError",
           "set_device", "get_device", "seed", "to_device", "to_numpy", "UserError", "draw_graph"]
