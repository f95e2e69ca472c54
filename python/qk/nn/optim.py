"""Optimizers (SGD with momentum, Adam, AdamW) and learning-rate schedules.

Optimizers update ``param.data`` in place from ``param.grad``; parameters
without a gradient are skipped.  Schedules set ``optimizer.lr`` each time
their ``step()`` is called (``fit`` calls it once per epoch).
"""

from __future__ import annotations

import math

import numpy as np


class Optimizer:
    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {lr}")
        self.lr = float(lr)
        self.initial_lr = self.lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """SGD with optional (Nesterov) momentum and L2 weight decay (PyTorch's update rule)."""

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        self._velocity = [None] * len(self.params)

    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                v = self._velocity[i]
                if v is None:
                    v = self._velocity[i] = g.copy()
                else:
                    v *= self.momentum
                    v += g
                g = g + self.momentum * v if self.nesterov else v
            p.data -= (self.lr * g).astype(p.data.dtype, copy=False)


class Adam(Optimizer):
    """Adam; ``weight_decay`` is added to the gradient (L2). See AdamW for decoupled decay."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self._m = [np.zeros_like(p.data) for p in self.params]
        self._v = [np.zeros_like(p.data) for p in self.params]
        self._t = 0

    def step(self):
        self._t += 1
        c1 = 1 - self.beta1**self._t
        c2 = 1 - self.beta2**self._t
        for p, m, v in zip(self.params, self._m, self._v):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay and self.decoupled:
                p.data *= 1 - self.lr * self.weight_decay
            elif self.weight_decay:
                g = g + self.weight_decay * p.data
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * (g * g)
            update = (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)
            p.data -= update.astype(p.data.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


class StepLR:
    """Multiply the learning rate by ``gamma`` every ``step_size`` calls of ``step()``."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.optimizer = optimizer
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        self.count = 0

    def step(self):
        self.count += 1
        self.optimizer.lr = self.optimizer.initial_lr * self.gamma ** (self.count // self.step_size)


class CosineLR:
    """Cosine decay from the optimizer's initial lr to ``min_lr`` over ``total`` calls of ``step()``."""

    def __init__(self, optimizer, total: int, min_lr: float = 0.0):
        if total < 1:
            raise ValueError(f"CosineLR: total must be >= 1, got {total}")
        self.optimizer = optimizer
        self.total = int(total)
        self.min_lr = float(min_lr)
        self.count = 0

    def step(self):
        self.count = min(self.count + 1, self.total)
        cos = 0.5 * (1 + math.cos(math.pi * self.count / self.total))
        self.optimizer.lr = self.min_lr + (self.optimizer.initial_lr - self.min_lr) * cos
