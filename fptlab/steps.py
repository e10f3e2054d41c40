"""One optimisation step and one evaluation of an FPT run (paper Section 2.2, Appendix C): the
device, the seeding, the batch at each step, the optimiser. `fptlab.train` runs the loop around them.

Batch order is a pure function of (seed, step) (`BatchOrder`), so a run resumed from a checkpoint at
any step draws exactly the batches it would have drawn without stopping.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fptlab.config import RunConfig
from fptlab.errors import IncompatibleError
from fptlab.tasks.base import ArraySplit, TaskData

# Tags that keep the per-purpose random streams of one seed apart.
EPOCH_TAG, AUGMENT_TAG, EVAL_TAG, VAL_EVAL_TAG = 1, 2, 3, 4


def pick_device(choice: str) -> Any:
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise IncompatibleError("device = \"cuda\" was requested but no CUDA GPU is visible. Use device = \"auto\" or \"cpu\".")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---- data ----------------------------------------------------------------------------------------
class BatchOrder:
    """Indices of the examples in training step `step`: epochs of seeded permutations, so the batch at
    any step is known without replaying earlier ones (exact resume)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng([self.seed, EPOCH_TAG, epoch]).permutation(self.n)
        return self._perms[epoch]

    def indices(self, step: int, batch_size: int) -> np.ndarray:
        positions = (step - 1) * batch_size + np.arange(batch_size)
        epochs, offsets = np.divmod(positions, self.n)
        return np.array([self._perm(e)[o] for e, o in zip(epochs.tolist(), offsets.tolist())])


def train_batch(data: TaskData, order: BatchOrder | None, step: int, cfg: RunConfig) -> tuple[Any, Any]:
    import torch

    rng = np.random.default_rng([cfg.seed, step])
    if order is None:
        x_raw, y = data.train.sample(cfg.batch_size, rng)
    else:
        idx = order.indices(step, cfg.batch_size)
        x_raw, y = data.train.x[idx], data.train.y[idx]
    x = data.encode(x_raw, True, np.random.default_rng([cfg.seed, step, AUGMENT_TAG]))
    return x, torch.as_tensor(np.asarray(y), dtype=torch.long).reshape(len(y), -1)  # y: (B, labels)


# ---- steps ---------------------------------------------------------------------------------------
def _autocast(cfg: RunConfig, device: Any) -> Any:
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def train_step(model: Any, optimizer: Any, params: list, x: Any, y: Any, cfg: RunConfig, device: Any) -> tuple[float, float, float]:
    """One optimiser step over a batch, accumulated over micro-batches. Returns (loss, accuracy, grad norm);
    the parameters are left untouched when the loss or gradient is not finite."""
    import torch
    import torch.nn.functional as F

    optimizer.zero_grad(set_to_none=True)
    batch = y.shape[0]
    micro = cfg.micro_batch_size or batch
    n_labels = y.numel()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for i in range(0, batch, micro):
        xb, yb = x[i : i + micro].to(device, non_blocking=True), y[i : i + micro].to(device, non_blocking=True)
        with _autocast(cfg, device):
            logits = model(xb)  # (b, labels, C)
        logits = logits.float()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="sum")
        (loss / n_labels).backward()
        loss_sum += loss.detach()
        correct += (logits.argmax(-1) == yb).sum()
    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    # One host-device sync per step for all three numbers (matters on a GPU at small step sizes).
    loss_value, norm_value, n_correct = torch.stack([loss_sum / n_labels, grad_norm.float(), correct.float()]).tolist()
    if math.isfinite(loss_value) and math.isfinite(norm_value):
        optimizer.step()
    return loss_value, n_correct / n_labels, norm_value


def evaluate(model: Any, data: TaskData, cfg: RunConfig, device: Any, step: int, split: ArraySplit | None = None) -> tuple[float, float]:
    """Loss and accuracy on the whole test split (or `split`: the validation split), or on
    `eval_batches` random batches of it."""
    import torch
    import torch.nn.functional as F

    test: ArraySplit = data.test if split is None else split
    n = len(test)
    if cfg.eval_batches:
        rng = np.random.default_rng([cfg.seed, step, EVAL_TAG if split is None else VAL_EVAL_TAG])
        chunks = [rng.choice(n, size=min(cfg.batch_size, n), replace=False) for _ in range(cfg.eval_batches)]
    else:
        chunks = [np.arange(i, min(i + cfg.eval_batch_size, n)) for i in range(0, n, cfg.eval_batch_size)]
    no_rng = np.random.default_rng(0)  # encode(train=False) must not draw from it
    loss_sum, correct, labels = 0.0, 0, 0
    model.eval()
    with torch.no_grad():
        for idx in chunks:
            x = data.encode(test.x[idx], False, no_rng).to(device)
            y = torch.as_tensor(np.asarray(test.y[idx]), dtype=torch.long, device=device).reshape(len(idx), -1)
            with _autocast(cfg, device):
                logits = model(x).float()
            loss_sum += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            correct += (logits.argmax(-1) == y).sum().item()
            labels += y.numel()
    model.train()
    return loss_sum / labels, correct / labels


def make_optimizer(cfg: RunConfig, params: list) -> Any:
    import torch

    factories = {
        "adam": lambda: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        "adamw": lambda: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        "sgd": lambda: torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay),
    }
    return factories[cfg.optimizer]()
