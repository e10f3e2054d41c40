"""Trainable parameter groups as a run names them (paper Sections 2.2, 3.11-3.13; Tables 13-21).

A `train` entry is one of:
- a group: `input`, `output`, `positions`, `layernorm`, `attention`, `feedforward`, `recurrent`
  (an LSTM's own weights), `embeddings` (unused token tables), `other`;
- a group in some blocks only, `GROUP@LAYERS`: `attention@-1` is the last block's attention (Table 14),
  `feedforward@0,1` the first two blocks' feed-forward layers; negative indices count from the last
  block the run keeps (after `model.depth`);
- `all`: every parameter trains ("Full" rows, Table 13's "+ Both").

`canonical_groups` puts a list in one order (so `output,input` and `input,output` hash the same) and
drops entries another entry already covers. Which parameters a group holds is the backbone's
declaration (`fptlab.backbones`); `fptlab.model.apply_trainable` resolves the list against it.
No torch here: configs and sweep specs use this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from fptlab.errors import ConfigError, IncompatibleError, UnknownNameError
from fptlab.registry import unknown_name_message

FPT_GROUPS = ("input", "output")  # the layers FPT adds around the body
BACKBONE_GROUPS = ("positions", "layernorm", "attention", "feedforward", "embeddings", "other", "recurrent")
ALL_GROUPS = FPT_GROUPS + BACKBONE_GROUPS
ALL = "all"
PAPER_GROUPS = ("input", "output", "positions", "layernorm")  # FPT (Section 2.2)


@dataclass(frozen=True)
class GroupRef:
    """One parsed `train` entry: a group, optionally limited to some blocks (None = every block)."""

    group: str
    layers: tuple[int, ...] | None = None

    @property
    def text(self) -> str:
        return self.group if self.layers is None else f"{self.group}@{','.join(map(str, self.layers))}"


def parse_group(entry: str) -> GroupRef:
    """`"attention@-1,0"` -> GroupRef("attention", (-1, 0)); unknown names and bad indices raise."""
    name, at, layers = entry.strip().partition("@")
    if name != ALL and name not in ALL_GROUPS:
        raise UnknownNameError(unknown_name_message("parameter group", name, [ALL, *ALL_GROUPS]))
    if not at:
        return GroupRef(name)
    if name in (ALL, *FPT_GROUPS):
        raise ConfigError(f"'{entry}': '{name}' is not made of blocks, so it takes no @LAYERS. Write '{name}' alone.")
    try:
        indices = tuple(sorted({int(part) for part in layers.split(",") if part.strip()}))
    except ValueError:
        indices = ()
    if not indices:
        raise ConfigError(
            f"'{entry}': expected GROUP@LAYERS with comma-separated block indices, e.g. 'attention@-1' (the last block) "
            "or 'feedforward@0,1' (the first two)."
        )
    return GroupRef(name, indices)


def _rejoin(entries: tuple[str, ...]) -> list[str]:
    """`--train input,feedforward@0,1` splits on every comma: glue bare indices back onto the
    preceding `GROUP@...` entry, so the command line and TOML lists mean the same."""
    out: list[str] = []
    for entry in (e.strip() for e in entries):
        if out and "@" in out[-1] and entry.lstrip("-").isdigit():
            out[-1] = f"{out[-1]},{entry}"
        elif entry:
            out.append(entry)
    return out


def canonical_groups(entries: tuple[str, ...]) -> tuple[str, ...]:
    """One canonical order: `all` alone; whole groups in ALL_GROUPS order; then per-block entries by
    group order, indices sorted. A per-block entry of a group that trains whole is dropped."""
    refs = [parse_group(e) for e in _rejoin(entries)]
    if any(r.group == ALL for r in refs):
        return (ALL,)
    whole = {r.group for r in refs if r.layers is None}
    per_layer: dict[str, set[int]] = {}
    for r in refs:
        if r.layers is not None and r.group not in whole:
            per_layer.setdefault(r.group, set()).update(r.layers)
    ordered = [g for g in ALL_GROUPS if g in whole]
    ordered += [GroupRef(g, tuple(sorted(per_layer[g]))).text for g in ALL_GROUPS if g in per_layer]
    return tuple(ordered)


def parse_all(entries: tuple[str, ...]) -> list[GroupRef]:
    return [parse_group(e) for e in entries]


# ---- against a backbone (its declaration before building, its parameters after) --------------------
def check_available(ref: GroupRef, backbone: str, groups: list[str]) -> None:
    """A group the backbone has no parameter in is an error naming the groups it has."""
    if ref.group not in groups:
        raise IncompatibleError(
            f"train names group '{ref.group}', but backbone '{backbone}' has no parameter in it. Its groups: {', '.join(groups)}."
        )


def block_index(ref: GroupRef, index: int, n_blocks: int, backbone: str) -> int:
    """`index` of `ref` as a block of the `n_blocks` the run keeps (negative counts from the last)."""
    if not -n_blocks <= index < n_blocks:
        raise IncompatibleError(
            f"train entry '{ref.text}': block {index} does not exist; this run keeps {n_blocks} blocks of "
            f"'{backbone}' (indices 0..{n_blocks - 1}, or -1 for the last)."
        )
    return index % n_blocks
