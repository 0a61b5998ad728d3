"""PyTorch's training step, timed by bench/train_step.py beside minisum's in the same run.

The model is the project's one PyTorch reference model, minisum/torch_reference.py.
Imported only when PyTorch is installed.
"""
import torch
from torch.nn import functional as F

from minisum.torch_reference import TorchLanguageModel


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
