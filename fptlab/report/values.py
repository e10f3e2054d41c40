"""How one trial becomes the number a table cell shows, and how that number is printed.

Accuracies are shown in percent, as the paper prints them. `steps_to_converge` is not a per-trial
value: it needs every compared row's curves at once (`fptlab.report.convergence`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fptlab.registry import Registry


@dataclass(frozen=True)
class ValueKind:
    name: str
    unit: str  # "%" | "steps" | "params" | "x"
    of_trial: Callable[[Mapping[str, float]], float] | None  # results dict -> value; None: computed elsewhere
    describe: str
    selected: bool = False  # reads the step validation selected, when the trial has a validation split

    def problem(self, value: float) -> str | None:
        """Why a stored value cannot be this kind's (an accuracy of inf % or 140 %, a negative count),
        else None. A database is shared: its rows are checked before they are shown."""
        if not math.isfinite(value):
            return f"{value} (not a finite number)"
        low, high = {"%": (0.0, 100.0), "params": (0.0, math.inf), "steps": (0.0, math.inf), "s": (0.0, math.inf)}.get(self.unit, (-math.inf, math.inf))
        if not low <= value <= high:
            return f"{format_value(value, self.unit)} (outside {low:g} to {high:g})"
        return None


VALUES: Registry[ValueKind] = Registry("value kind")


def _result(key: str, scale: float = 1.0) -> Callable[[Mapping[str, float]], float]:
    def get(results: Mapping[str, float]) -> float:
        value = results.get(key)
        return math.nan if value is None else float(value) * scale

    return get


def _seconds_per_step(results: Mapping[str, float]) -> float:
    """Training seconds per step of the last attempt: its wall clock covers only the steps since a
    resume, and excludes the one-off feature pass of cache_features runs."""
    steps, wall = results.get("steps"), results.get("wall_seconds")
    if steps is None or wall is None:
        return math.nan
    ran = float(steps) - float(results.get("resumed_from", 0.0))
    if ran <= 0:
        return math.nan
    return (float(wall) - float(results.get("feature_seconds", 0.0))) / ran


def _on_whole_split(read: Callable[[Mapping[str, float]], float]) -> Callable[[Mapping[str, float]], float]:
    """A test accuracy over the whole evaluation split: a task that skips examples (remote homology, over
    1024 tokens) records the share it kept (`test_kept`), and the skipped ones count as wrong, as the
    paper's 0.9739 scaling counts them."""
    def get(results: Mapping[str, float]) -> float:
        kept = results.get("test_kept", 1.0)
        return read(results) * (float(kept) if kept is not None and math.isfinite(kept) else 1.0)

    return get


def _selected_test_accuracy(results: Mapping[str, float]) -> float:
    """Test accuracy at the step validation selected (the best validation accuracy); the last
    evaluation's for a trial without a validation split (stored before fptlab 0.4.0, or val_fraction unset)."""
    selected = results.get("selected_test_accuracy")
    if selected is not None and math.isfinite(selected):
        return float(selected) * 100.0
    return _result("test_accuracy", 100.0)(results)


def has_selection(results: Mapping[str, float]) -> bool:
    selected = results.get("selected_test_accuracy")
    return selected is not None and math.isfinite(selected)


for _kind in (
    ValueKind("test_accuracy", "%", _on_whole_split(_selected_test_accuracy),
              "test accuracy at the step of best validation accuracy (the last evaluation without a validation split)",
              selected=True),
    ValueKind("last_test_accuracy", "%", _on_whole_split(_result("test_accuracy", 100.0)), "test accuracy at the last evaluation"),
    ValueKind("best_test_accuracy", "%", _on_whole_split(_result("best_test_accuracy", 100.0)), "best test accuracy over evaluations"),
    ValueKind("train_accuracy", "%", _result("train_accuracy", 100.0), "train accuracy over the last evaluation interval"),
    ValueKind("trainable_params", "params", _result("trainable_params"), "trainable parameters"),
    ValueKind("total_params", "params", _result("total_params"), "total parameters"),
    ValueKind("seconds_per_step", "s", _seconds_per_step, "wall-clock seconds per training step (feature caching excluded)"),
    ValueKind("steps_to_converge", "steps", None, "gradient steps to converge (see the definition)"),
    ValueKind("steps_to_level", "steps", None, "gradient steps to reach another row's converged level"),
):
    VALUES.register(_kind.name, _kind)


def format_value(value: float, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "params":
        return format_count(value)
    if unit == "steps":
        return format_steps(value)
    if unit == "x":
        return f"{value:.1f}x"
    if unit == "s":
        return f"{value:.3g} s"
    return f"{value:.4g}"


def format_spread(value: float, unit: str) -> str:
    """A ± spread in the value's unit, without the unit for percentages ("± 1.2")."""
    if math.isnan(value):
        return ""
    if unit == "%":
        return f"{value:.1f}"
    if unit == "steps":
        return format_steps(value)
    return f"{value:.3g}"


def format_count(n: float) -> str:
    """117M, 106K, 1.5B, as the paper prints parameter counts."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}"


def format_steps(n: float) -> str:
    """4 × 10^4 style, one significant digit as in the paper's Table 6, unless small."""
    if n < 1000:
        return f"{n:.0f}"
    exponent = int(math.floor(math.log10(n)))
    mantissa = n / 10**exponent
    return f"{mantissa:.1f} × 10^{exponent}" if round(mantissa, 1) != round(mantissa) else f"{round(mantissa):.0f} × 10^{exponent}"
