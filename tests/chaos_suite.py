"""bench/chaos.py loaded once as a module, for the tests that run its faults or reuse its harness
(process trees, the local multi-node cluster, the audit, the sweep spec). It is a script, not a
package, so it is loaded from its path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "fptlab_bench_chaos"

if _NAME in sys.modules:
    chaos = sys.modules[_NAME]
else:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).resolve().parents[1] / "bench" / "chaos.py")
    chaos = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = chaos  # dataclasses look their module up while the file executes
    _spec.loader.exec_module(chaos)
