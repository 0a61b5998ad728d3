"""AdamW and gradient clipping.

AdamW (Loshchilov & Hutter): Adam's update plus a weight decay applied to the weights
directly, not mixed into the gradient. With weight_decay 0 it is exactly Adam.
"""
import math

import numpy as np

from minisum import checks
from minisum.backend import get_array_module

BLOCK = 2 ** 15  # entries of a parameter updated at a time on the CPU (see blocks)
KERAS_ADAM_EPS = 1e-7  # Keras' Adam default epsilon (PyTorch's is 1e-8); the Keras benchmarks use it
EPS_STYLES = ("torch", "keras")


class AdamW:
    """For each parameter w with gradient g, at step t (from 1):

        m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
        m_hat = m / (1 - b1^t)         v_hat = v / (1 - b2^t)
        w = w - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w)

    eps_style "keras" adds eps to sqrt(v) instead, as Keras' Adam does (the classification
    and multimodal benchmarks): w = w - lr * m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t)),
    i.e. a larger effective eps in the first steps (x31.6 at step 1 with b2 0.999).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, eps_style="torch"):
        if eps_style not in EPS_STYLES:
            raise ValueError(f"eps_style must be one of {', '.join(EPS_STYLES)}, got {eps_style!r}")
        self.params = list(params)
        if not self.params:
            raise ValueError("AdamW got an empty parameter list: pass model.parameters()")
        checks.real("lr", lr, minimum=0)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        checks.real("betas[0]", betas[0], minimum=0, below=1)
        checks.real("betas[1]", betas[1], minimum=0, below=1)
        checks.real("eps", eps, minimum=0)
        checks.real("weight_decay", weight_decay, minimum=0)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.eps_style = eps_style
        self.step_count = 0
        self.m = [None] * len(self.params)
        self.v = [None] * len(self.params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.step_count += 1
        b1, b2 = self.betas
        correction1 = 1 - b1 ** self.step_count
        correction2 = 1 - b2 ** self.step_count
        if self.eps_style == "keras":  # w -= lr sqrt(c2) / c1 * m / (sqrt(v) + eps)
            step_size, v_scale = self.lr * math.sqrt(correction2) / correction1, 1.0
        else:  # w -= lr / c1 * m / (sqrt(v / c2) + eps)
            step_size, v_scale = self.lr / correction1, 1 / correction2
        constants = (b1, b2, step_size, v_scale, self.eps, self.lr * self.weight_decay)
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            xp = get_array_module(p.grad)
            if self.m[i] is None:
                self.m[i], self.v[i] = xp.zeros(p.shape, p.dtype), xp.zeros(p.shape, p.dtype)
            w, g, m, v = p.data, p.grad, self.m[i], self.v[i]
            if not w.flags.c_contiguous:  # no flat view of it: the whole array at once
                adamw_update(w, g, m, v, *constants)
                continue
            w, g, m, v = (a.reshape(-1) for a in (w, g, m, v))  # views: the update writes through them
            for block in blocks(w.size, xp):
                adamw_update(w[block], g[block], m[block], v[block], *constants)

    def state_dict(self):
        """Arrays and numbers only, so a checkpoint needs no pickle."""
        state = {"step_count": self.step_count, "lr": self.lr}
        for i in range(len(self.params)):
            if self.m[i] is not None:
                state[f"m.{i}"], state[f"v.{i}"] = self.m[i].copy(), self.v[i].copy()  # a snapshot
        return state

    def load_state_dict(self, state):
        self.step_count, self.lr = int(state["step_count"]), float(state["lr"])
        for i, p in enumerate(self.params):
            if f"m.{i}" in state:
                xp = get_array_module(p.data)
                for name, slots in (("m", self.m), ("v", self.v)):
                    value = xp.array(state[f"{name}.{i}"], dtype=p.dtype)  # a copy: steps update it in place
                    if value.shape != p.shape:
                        raise ValueError(f"optimizer state {name}.{i} has shape {value.shape}, "
                                         f"parameter {i} has shape {p.shape}")
                    slots[i] = value


def blocks(size, xp):
    """Slices that cover 0..size: BLOCK entries each on the CPU, so that every pass of the
    update runs over arrays in the cache instead of streaming the whole parameter through
    memory again (the output layer's weight is 103 MB at the paper's vocabulary). On the GPU
    one slice: each block costs kernel launches there, and there is no such cache to fit."""
    step = BLOCK if xp is np else max(size, 1)
    return [slice(start, start + step) for start in range(0, size, step)]


def adamw_update(w, g, m, v, b1, b2, step_size, v_scale, eps, decay):
    """One AdamW update of the flat arrays w, m, v in place, given the gradient g:
    w -= decay * w + step_size * m / (sqrt(v * v_scale) + eps), after the moment updates."""
    # BEGIN TASK 5.1 AdamW update
    xp = get_array_module(w)
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    if decay:
        w -= decay * w
    update = v * v_scale  # the one scratch array: sqrt, + eps, m / . and the step size in place
    xp.sqrt(update, out=update)
    update += eps
    xp.divide(m, update, out=update)
    update *= step_size
    w -= update
    # END TASK 5.1


def clip_grad_value(params, clip):
    """Clamp every gradient entry to [-clip, clip] (Keras' clipvalue)."""
    checks.real("clip", clip, minimum=0)
    for p in params:
        if p.grad is not None:
            get_array_module(p.grad).clip(p.grad, -clip, clip, out=p.grad)


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so that their global L2 norm is at most max_norm.
    Returns the norm before clipping."""
    checks.real("max_norm", max_norm, minimum=0)
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if total > max_norm:
        for g in grads:
            g *= max_norm / (total + 1e-6)
    return total


def warmup_cosine(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Linear warmup to base_lr over warmup_steps, then cosine decay to min_lr at total_steps."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))
