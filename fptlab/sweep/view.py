"""A quiet live view of a sweep: cells done / running / failed and an ETA (Ray's tables stay off)."""

from __future__ import annotations

import sys
from typing import Any


class SweepView:
    def __init__(self, total: int, already_done: int, enabled: bool = True) -> None:
        self.total, self.done, self.running, self.failed = total, already_done, 0, 0
        self.progress = None
        self.live = enabled and sys.stderr.isatty()
        self.enabled = enabled
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[state]}"),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True),
            )
            self.progress.start()
            self.task = self.progress.add_task("sweep", total=total, completed=already_done, state=self._state())

    def _state(self) -> str:
        return f"running {self.running} · failed {self.failed}"

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text)
        elif self.enabled:
            print(text, file=sys.stderr, flush=True)

    def started(self, config_hash: str) -> None:
        self.running += 1
        self._update(0)

    def finished(self, config_hash: str, status: str, accuracy: Any) -> None:
        self.running = max(0, self.running - 1)
        self.failed += status == "failed"
        acc = f" test acc {accuracy:.4f}" if isinstance(accuracy, float) else ""
        self._say(f"  {config_hash} {status}{acc}")
        self._update(1)

    def _update(self, advance: int) -> None:
        self.done += advance
        if self.progress is not None:
            self.progress.update(self.task, advance=advance, state=self._state())

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
