"""Backbone registry. Every public module of this package registers one family (and its sizes) on
import; they are found by listing the package, so a new family is one new file."""

from __future__ import annotations

from fptlab.backbones.base import ALL_GROUPS, BACKBONE_GROUPS, FPT_GROUPS, BackboneSpec, ModelOptions
from fptlab.registry import Registry, import_submodules

BACKBONES: Registry[BackboneSpec] = Registry("backbone")

import_submodules(__name__, __path__, skip=("base",))

__all__ = ["ALL_GROUPS", "BACKBONES", "BACKBONE_GROUPS", "FPT_GROUPS", "BackboneSpec", "ModelOptions"]
