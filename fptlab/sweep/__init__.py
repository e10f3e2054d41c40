"""Sweeps: a TOML spec declares a grid of runs (`fptlab.sweep.grid`, pure: no Ray, no database, no
torch); an executor runs the cells. Importing this package stays light: registries load on use."""

from __future__ import annotations

from fptlab.sweep.grid import Cell, Spec, expand, load_spec, spec_from_dict

__all__ = ["Cell", "Spec", "expand", "load_spec", "spec_from_dict"]
