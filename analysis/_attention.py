"""Attention maps shared by Figures 3, 4 and 5 (Section 3.5): reading the finished trials' `attention`
artifacts (`fptlab.artifacts.attention_maps`: a safetensors file with `attention` (n, T, T), `inputs`,
`labels`) and drawing the probe examples of the first seed that has one, side by side, with the map
averaged over examples and then over seeds. Private (leading underscore): not a table or figure itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAX_PANELS = 8
TASK_NAMES = {"bit_xor": "Bit XOR", "bit_memory": "Bit Memory"}


@dataclass
class Run:
    seed: Any
    hash: str
    attention: np.ndarray  # (n, T, T): probe examples x query x key
    inputs: np.ndarray | None = None  # (n, T, d) raw input tokens


@dataclass
class AttentionRuns:
    """The finished trials' maps of one selection (sorted by seed) and how to read their positions."""

    runs: list[Run] = field(default_factory=list)
    task: str = ""
    backbone: str = ""
    causal: bool = True
    starts: list[int] = field(default_factory=list)  # positions where a new input segment begins
    layout: str = ""  # the segments in words, as the paper's captions give them
    n_bits: int | None = None  # Bit XOR: bits per string
    n_strings: int | None = None  # Bit Memory: strings to recall from
    tokens: int | None = None  # Bit Memory: tokens per string (the query has as many)

    def mean(self) -> np.ndarray | None:
        """(T, T): mean over each seed's examples, then over seeds (each seed weighs the same)."""
        per_seed = [r.attention.mean(axis=0) for r in self.runs]
        return np.mean(per_seed, axis=0) if per_seed else None

    def partner_mass(self) -> tuple[float, float] | None:
        """Bit XOR: attention of each output (query n+i) on its two partners (keys i and n+i), mean
        over outputs, on the mean map; and what uniform attention over the visible keys would give."""
        att = self.mean()
        n = self.n_bits
        if att is None or n is None or att.shape[0] != 2 * n:
            return None
        mass = float(np.mean([att[n + i, i] + att[n + i, n + i] for i in range(n)]))
        uniform = float(np.mean([2 / (n + i + 1) if self.causal else 2 / (2 * n) for i in range(n)]))
        return mass, uniform

    def recall_mass(self) -> tuple[float, float, int] | None:
        """Bit Memory: attention of the query rows on the string the query recalls, and on each other
        string, mean over query rows and over the examples of every seed (per example, since the
        recalled string differs between examples); and the number of examples."""
        s, t = self.n_strings, self.tokens
        if s is None or t is None or s < 2:
            return None
        recalled, others = [], []
        for run in self.runs:
            if run.inputs is None or len(run.inputs) != len(run.attention) or run.attention.shape[1] != (s + 1) * t:
                continue
            for att, x in zip(run.attention, run.inputs, strict=True):
                which = recalled_string(x, s)
                per_string = att[s * t:, : s * t].reshape(t, s, t).sum(axis=-1).mean(axis=0)  # (S,): query rows -> strings
                recalled.append(per_string[which])
                others.append(np.delete(per_string, which).mean())
        return (float(np.mean(recalled)), float(np.mean(others)), len(recalled)) if recalled else None


def recalled_string(x: np.ndarray, n_strings: int) -> int:
    """Which of the S strings (±1 bits) a Bit Memory example's query (±1, masked bits 0) recalls."""
    rows = np.asarray(x, dtype=float).reshape(n_strings + 1, -1)
    return int(np.argmax(rows[:n_strings] @ rows[n_strings]))


def load(ctx: Any, where: dict[str, Any]) -> AttentionRuns:
    """The finished trials' attention maps; a trial without a readable artifact becomes a note."""
    cells = sorted(ctx.cells.select(where), key=lambda c: c.labels.get("seed", 0)) if ctx.cells is not None else []
    out = AttentionRuns()
    if cells:
        _describe(out, cells[0].values)
    done = set(ctx.finished([c.hash for c in cells]))
    for cell in cells:
        if cell.hash not in done:
            continue  # the engine notes unfinished trials and the command that runs them
        who = f"{ctx.item.key}: seed {cell.labels.get('seed')} (trial {cell.hash[:12]})"
        found = ctx.artifacts(cell.hash, "attention")
        if not found:
            ctx.notes.append(f"{who} finished without an attention artifact (its attention_maps = "
                             f"{cell.values.get('attention_maps')}; a run records maps only when it is > 0).")
            continue
        if found[-1]["path"] is None:
            continue  # refused or not reachable here: the context noted why
        run, problem = _read(found[-1]["path"], cell.labels.get("seed"), cell.hash)
        if run is None:
            ctx.notes.append(f"{who}: {problem}")
        elif out.runs and run.attention.shape[1:] != out.runs[0].attention.shape[1:]:
            ctx.notes.append(f"{who}: maps of shape {run.attention.shape[1:]} differ from seed {out.runs[0].seed}'s "
                             f"{out.runs[0].attention.shape[1:]}; left out.")
        else:
            out.runs.append(run)
    return out


def _describe(out: AttentionRuns, values: dict[str, Any]) -> None:
    from fptlab.backbones import BACKBONES
    from fptlab.errors import FptlabError

    out.task, out.backbone = str(values.get("task", "")), str(values.get("backbone", ""))
    try:
        out.causal = BACKBONES.get(out.backbone).causal
    except FptlabError:
        out.causal = False  # unknown body: mask nothing rather than hide real weights
    if out.task == "bit_xor":
        n = int(values["bit_xor.n_bits"])
        out.n_bits, out.starts = n, [n]
        out.layout = f"inputs 0-{n - 1} are the first bitstring, {n}-{2 * n - 1} the second (one bit per token)"
    elif out.task == "bit_memory":
        s, t = int(values["bit_memory.n_strings"]), int(values["bit_memory.n_bits"]) // int(values["bit_memory.bits_per_token"])
        out.n_strings, out.tokens, out.starts = s, t, [t * k for k in range(1, s + 1)]
        out.layout = (f"inputs 0-{s * t - 1} are the {s} strings ({t} tokens each, dashed lines between them), "
                      f"{s * t}-{(s + 1) * t - 1} the masked query")


def _read(location: Path, seed: Any, config_hash: str) -> tuple[Run | None, str]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from fptlab.errors import BadFileError
    from fptlab.safefiles import check_safetensors

    try:
        check_safetensors(location)
        tensors = load_file(str(location))
    except BadFileError as e:
        return None, str(e)
    except (OSError, SafetensorError) as e:
        return None, f"cannot read attention file {location}: {e}"
    att = np.asarray(tensors.get("attention", np.empty(0)), dtype=float)
    if att.ndim != 3 or att.shape[1] != att.shape[2] or att.shape[0] == 0:
        return None, f"attention file {location} holds no (n, T, T) `attention` tensor (found shape {att.shape})."
    return Run(seed, config_hash, att, tensors.get("inputs")), ""


def draw_attention(ctx: Any, maps: AttentionRuns, label: str, subject: str) -> list[tuple[str, Any]]:
    """The first seed's examples side by side, and the mean over seeds, with the segments marked.
    `label` names the body in titles ("FPT"), `subject` in captions ("the random frozen transformer")."""
    from fptlab.report.figures import attention_grid, attention_map  # matplotlib loads only when drawing

    task = TASK_NAMES.get(maps.task, maps.task or "?")
    masked = (f"The body ({maps.backbone}) is causal: the grey upper triangle (keys after the query) cannot be attended."
              if maps.causal else f"The body ({maps.backbone}) attends both ways: no masked triangle.")
    read = f"Rows: query (output) positions; columns: key (input) positions; {maps.layout}."
    if not maps.runs:
        return [(f"{label} on {task}: no attention maps yet.", attention_grid([], title=f"{label} on {task}: first-block attention"))]
    first = maps.runs[0]
    panels = [(_panel_title(maps, first, k), first.attention[k]) for k in range(min(len(first.attention), MAX_PANELS))]
    grid = attention_grid(panels, title=f"{label} on {task}: first-block attention, seed {first.seed}", causal=maps.causal)
    mean = maps.mean()
    seeds = f"{len(maps.runs)} seed{'s' if len(maps.runs) > 1 else ''}"
    single = attention_map(mean, title=f"{label} on {task}: mean over {seeds}", causal=maps.causal)
    for fig in (grid, single):
        _mark_segments(fig, maps.starts, mean.shape[0])
    return [
        (f"First-block attention (mean over heads) of {subject} on {len(panels)} test examples, seed {first.seed}. "
         f"{read} {masked}", grid),
        (f"First-block attention of {subject}, mean over the examples of {seeds}. {read} {_measure_text(maps)}{masked}", single),
    ]


def _panel_title(maps: AttentionRuns, run: Run, k: int) -> str:
    """What a reader needs to judge one example's map: on Bit XOR with short strings its two bitstrings
    (is the map positional?), on Bit Memory which string the query recalls (is that string attended?)."""
    title = f"example {k + 1}"
    if run.inputs is None or len(run.inputs) != len(run.attention):
        return title
    x = np.asarray(run.inputs[k], dtype=float).reshape(-1)
    n, s = maps.n_bits, maps.n_strings
    if n is not None and n <= 8 and x.size == 2 * n:
        bits = "".join(str(int(round(b))) for b in x)
        return f"{title}: {bits[:n]} ⊕ {bits[n:]}"
    if s is not None and x.size % (s + 1) == 0:
        return f"{title}: query = string {recalled_string(x, s) + 1}"
    return title


def _measure_text(maps: AttentionRuns) -> str:
    """The paper's reading of the map as a number: on Bit XOR the mass on the two XOR partners, on Bit
    Memory the mass on the string the query recalls."""
    found = maps.partner_mass()
    if found is not None:
        n = maps.n_bits
        return (f"Each output (query {n}+i) puts {found[0]:.2f} of its attention on its two XOR partners (keys i and "
                f"{n}+i); uniform attention would give {found[1]:.2f}. ")
    recall = maps.recall_mass()
    if recall is not None:
        return (f"Averaging blurs the string each query recalls, which differs between examples; per example, the "
                f"query rows put {recall[0]:.2f} of their attention on the recalled string and {recall[1]:.2f} on "
                f"each other string (mean over {recall[2]} examples). ")
    return ""


def _mark_segments(fig: Any, starts: list[int], size: int) -> None:
    """Dashed lines between input segments on every map; on long maps, ticks at the segment starts."""
    starts = [s for s in starts if 0 < s < size]
    for ax in fig.axes:
        if not ax.images:
            continue  # the colorbar
        for s in starts:
            ax.axvline(s - 0.5, color="white", linestyle="--", linewidth=0.8, alpha=0.8)
            ax.axhline(s - 0.5, color="white", linestyle="--", linewidth=0.8, alpha=0.8)
        if size > 12 and starts:
            ticks = [0, *starts, size - 1] if size - 1 not in starts else [0, *starts]
            ax.set_xticks(ticks, [str(t) for t in ticks], rotation=90)
            ax.set_yticks(ticks, [str(t) for t in ticks])
