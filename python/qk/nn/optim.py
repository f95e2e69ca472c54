"""Optimizers and learning-rate schedules (PyTorch's update rules)."""

from __future__ import annotations

import math

import numpy as np


class Optimizer:
    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("params: the optimizer got no parameters")
        if not lr > 0:
            raise ValueError(f"lr: expected a positive learning rate, got {lr}")
        self.lr = lr
        self.state = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                p.data = self._update(p.data, p.grad.astype(p.data.dtype, copy=False), state)

    def _update(self, w, g, state):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (Nesterov too) and weight decay, as PyTorch's."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def _update(self, w, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum:
            buf = state.get("momentum")
            buf = g.copy() if buf is None else self.momentum * buf + g
            state["momentum"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        return w - self.lr * g


class Adam(Optimizer):
    """Adam; with `decoupled=True` (or the AdamW class) weight decay is applied to the weights directly."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled: bool = False):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay, self.decoupled = betas, eps, weight_decay, decoupled

    def _update(self, w, g, state):
        b1, b2 = self.betas
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * w
        t = state.get("t", 0) + 1
        m = b1 * state.get("m", 0) + (1 - b1) * g
        v = b2 * state.get("v", 0) + (1 - b2) * g * g
        state.update(t=t, m=m, v=v)
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        if self.weight_decay and self.decoupled:
            w = w * (1 - self.lr * self.weight_decay)
        return (w - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(w.dtype)


class AdamW(Adam):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps, weight_decay, decoupled=True)


class CosineLR:
    """Cosine decay of the optimizer's lr from its initial value to `min_lr` over `total_steps` calls of step()."""

    def __init__(self, optimizer: Optimizer, total_steps: int, min_lr: float = 0.0):
        if total_steps < 1:
            raise ValueError(f"total_steps: expected >= 1, got {total_steps}")
        self.optimizer, self.total, self.min_lr = optimizer, total_steps, min_lr
        self.base_lr, self.t = optimizer.lr, 0

    def step(self) -> None:
        self.t = min(self.t + 1, self.total)
        cos = 0.5 * (1 + math.cos(math.pi * self.t / self.total))
        self.optimizer.lr = self.min_lr + (self.base_lr - self.min_lr) * cos


class StepLR:
    """Multiplies the lr by `gamma` every `step_size` calls of step()."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.optimizer, self.step_size, self.gamma, self.t = optimizer, step_size, gamma, 0
        self.base_lr = optimizer.lr

    def step(self) -> None:
        self.t += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.t // self.step_size)
