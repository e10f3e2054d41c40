"""Task registry. Each module in this package registers one or more tasks on import."""

from __future__ import annotations

from fptlab.registry import Registry
from fptlab.tasks.base import ArraySplit, StreamSplit, Task, TaskData, TaskSpec

TASKS: Registry[Task] = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    TASKS.register(cls.name, cls())
    return cls


# Importing the modules registers their tasks.
from fptlab.tasks import (  # noqa: E402,F401
    bit_memory,
    bit_xor,
    cifar10,
    listops,
    mnist,
    peptides,
    remote_homology,
)

__all__ = ["TASKS", "ArraySplit", "StreamSplit", "Task", "TaskData", "TaskSpec", "register_task"]
