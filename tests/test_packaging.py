"""pyproject.toml lists fptlab's packages by hand (the top-level analysis/ installs as fptlab.analysis):
every package folder of the checkout is in the list, and nothing else is."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_installed_and_analysis_maps_to_fptlab_analysis() -> None:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"] == {"fptlab.analysis": "analysis"}
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fptlab").rglob("__init__.py")}
    found.add("fptlab.analysis")
    assert (ROOT / "analysis" / "__init__.py").is_file()
    assert sorted(tool["packages"]) == sorted(found)
