"""Task registry. Each public module in this package registers one or more tasks on import; the
modules are found by listing the package."""

from __future__ import annotations

from fptlab.registry import Registry, import_submodules
from fptlab.tasks.base import ArraySplit, Missing, StreamSplit, Task, TaskData, TaskSpec

TASKS: Registry[Task] = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    TASKS.register(cls.name, cls())
    return cls


# Every public module of this package registers its tasks: a new task is one new file.
import_submodules(__name__, __path__, skip=("base",))  # noqa: E402

__all__ = ["TASKS", "ArraySplit", "Missing", "StreamSplit", "Task", "TaskData", "TaskSpec", "register_task"]
