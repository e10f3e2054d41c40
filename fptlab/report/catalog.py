"""The analysis modules: one file per paper table or figure in the top-level `analysis/` folder, each
defining `TABLE` (a `fptlab.report.Table`) or `FIGURE` (a `fptlab.report.Figure`). Adding a table is
adding a file.

`analysis/` is importable two ways, and both give the same package, `fptlab.analysis`:
- installed (wheel or editable): pyproject maps the package `fptlab.analysis` to the folder `analysis/`;
- from a checkout without installing, or an editable install whose finder ignores the mapping: the
  folder beside the `fptlab/` package is loaded under that name here.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from fptlab.errors import FptlabError
from fptlab.registry import unknown_name_message

PACKAGE = "fptlab.analysis"


def analysis_package() -> ModuleType:
    try:
        return importlib.import_module(PACKAGE)
    except ModuleNotFoundError as e:
        if e.name not in (PACKAGE, "fptlab.analysis"):
            raise
    root = Path(__file__).resolve().parents[2] / "analysis"
    if not (root / "__init__.py").is_file():
        raise FptlabError(
            f"The analysis modules are not installed: no package {PACKAGE} and no {root}. Reinstall fptlab "
            "(pip install -e . from a checkout)."
        )
    spec = importlib.util.spec_from_file_location(PACKAGE, root / "__init__.py", submodule_search_locations=[str(root)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return module


def analysis_root() -> Path | None:
    try:
        return Path(next(iter(analysis_package().__path__)))
    except FptlabError:
        return None


def _order(name: str) -> tuple[int, int, str]:
    """table1 < table2 < ... < table22 < figure1 < ... < anything else (quickstart)."""
    m = re.fullmatch(r"(table|figure)(\d+)", name)
    if m is None:
        return (2, 0, name)
    return (0 if m.group(1) == "table" else 1, int(m.group(2)), name)


def items() -> dict[str, Any]:
    """Every declared table and figure by key (table1, ..., figure6, quickstart), in paper order."""
    package = analysis_package()
    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{PACKAGE}.{info.name}")
        for attr in ("TABLE", "FIGURE"):
            item = getattr(module, attr, None)
            if item is not None:
                if item.key in found:
                    raise FptlabError(f"{PACKAGE}.{info.name}: '{item.key}' is declared twice.")
                found[item.key] = item
    return {k: found[k] for k in sorted(found, key=_order)}


def get(key: str) -> Any:
    known = items()
    if key not in known:
        raise FptlabError(unknown_name_message("table or figure", key, list(known)))
    return known[key]
