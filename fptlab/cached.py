"""Output-only training on cached features (paper Section 3.9, Table 10; reservoir computing, 4.6).

With `train = ["output"]` and `cache_features = true`, nothing below the read-out changes during
training: the input layer stays at its random init (orthogonal for dense tokens), the body is frozen
and dropout is off. So the read-out token features of every example are computed once, in one pass
(the first "epoch"), and the output layer then trains for as many epochs as `steps` asks on those
features alone: a linear classifier, hundreds of times cheaper per epoch than running the body.

The cached features form a `TaskData` of their own (x: (N, k, d) float32, the same labels, the same
example order), and `OutputHead` is the model that reads them, so the ordinary training loop,
evaluation, checkpoints and sinks run unchanged: batch order, seeds and metrics mean the same thing.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from fptlab.tasks.base import ArraySplit, TaskData, TaskSpec


def compute_features(model: Any, data: TaskData, split: ArraySplit, device: Any, batch_size: int, progress: Any = None) -> np.ndarray:
    """Read-out features (N, k, d) of every example of `split`, in order, in eval mode (no dropout)."""
    import torch

    no_rng = np.random.default_rng(0)  # encode(train=False) draws nothing: caching is refused for augmenting tasks
    chunks = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            x = data.encode(split.x[start : start + batch_size], False, no_rng).to(device)
            chunks.append(model.features(x).float().cpu().numpy())
            if progress is not None:
                progress(len(chunks[-1]))
    model.train(was_training)
    return np.concatenate(chunks) if chunks else np.zeros((0, data.spec.output_tokens, 0), dtype=np.float32)


def cached_task(model: Any, data: TaskData, device: Any, batch_size: int, progress: Any = None) -> tuple[TaskData, float]:
    """The task as seen by the output layer: its features instead of its inputs. Returns it and the
    seconds the feature pass took."""
    assert isinstance(data.train, ArraySplit), "caching needs a finite train split (checked in plan)"
    t0 = time.perf_counter()
    train = ArraySplit(compute_features(model, data, data.train, device, batch_size, progress), data.train.y)
    test = ArraySplit(compute_features(model, data, data.test, device, batch_size, progress), data.test.y)
    val = None if data.val is None else ArraySplit(compute_features(model, data, data.val, device, batch_size, progress), data.val.y)
    k, d = train.x.shape[1], train.x.shape[2]
    spec = TaskSpec("dense", d, k, n_classes=data.spec.n_classes, n_outputs=data.spec.n_outputs, output_tokens=k)
    description = f"{data.description} [read-out features cached: {len(train)} + {len(test)} × {k} × {d}]"
    features = TaskData(spec=spec, train=train, test=test, description=description, val=val, test_kept=data.test_kept)
    return features, time.perf_counter() - t0


def output_head(model: Any) -> Any:
    """The module that maps cached features (B, k, d) to logits with `model`'s own output layer."""
    from fptlab._fpt import OutputHead

    return OutputHead(model)
