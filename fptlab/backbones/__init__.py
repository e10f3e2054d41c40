"""Backbone registry. Each module in this package registers one family (and its sizes) on import."""

from __future__ import annotations

from fptlab.backbones.base import ALL_GROUPS, BACKBONE_GROUPS, FPT_GROUPS, BackboneSpec
from fptlab.registry import Registry

BACKBONES: Registry[BackboneSpec] = Registry("backbone")

from fptlab.backbones import gpt2, minilm  # noqa: E402,F401

__all__ = ["ALL_GROUPS", "BACKBONES", "BACKBONE_GROUPS", "FPT_GROUPS", "BackboneSpec"]
