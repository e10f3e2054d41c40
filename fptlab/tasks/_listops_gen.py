"""ListOps expressions as token ids: a seeded, vectorised version of Long Range Arena's generator
(Tay et al. 2021, used by the paper's Section 2.1 / Table 1 ListOps task), and text <-> ids.

LRA's generator (its `generate_tree`) draws, for each node at depth d < max_depth, r ~ U(0, 1): an
operator when r <= 0.25 (LRA names this constant VALUE_P, but a *digit* is drawn when r > 0.25, so
0.25 is the operator probability), else a digit 0-9; nodes at max_depth are digits. An operator takes
randint(2, max_args) arguments and is one of MIN, MAX, MED, SM (sum mod 10); MED is int(np.median),
i.e. floor((a + b) / 2) for an even count. A sample is kept when its LRA length (operators count 2:
"[OP" and "]"; digits 1; parentheses not counted) is strictly between min_length and max_length, and
duplicates are dropped. LRA writes each operator node with n arguments as
`( ( ... ( [OP a1 ) a2 ) ... an ) ] )` (n + 1 opening parentheses); we emit exactly that form.

Instead of LRA's recursion over Python `random` (unseeded), trees here grow level by level for a whole
batch of roots at once with numpy, then are evaluated bottom-up and written top-down without a loop
over nodes. The data is a function of the seed and the settings alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from fptlab.errors import ConfigError

# Every symbol LRA's text can contain; ids in sorted (ASCII) order after pad, never from set() order.
SOURCE_VOCAB = ("<pad>", "(", ")", *"0123456789", "[MAX", "[MED", "[MIN", "[SM", "]")
PAD, LPAR, RPAR, DIGIT0, OP0, CLOSE = 0, 1, 2, 3, 13, 17
OPS = SOURCE_VOCAB[OP0:CLOSE]  # operator k has id OP0 + k: MAX, MED, MIN, SM
OP_PROB = 0.25  # LRA's VALUE_P: probability that a node shallower than max_depth is an operator
BATCH_ROOTS = 1 << 14  # roots grown per numpy round; part of the data's definition (see GEN_VERSION)
GEN_VERSION = 1  # bump when the generator's output for given settings changes
_TOKEN_ID = {tok: i for i, tok in enumerate(SOURCE_VOCAB) if i}
_MAX_FRUITLESS_ROOTS = 2_000_000  # give up when this many roots in a row bring no new sample


@dataclass(frozen=True)
class GenSettings:
    min_length: int = 500
    max_length: int = 2000
    max_depth: int = 10
    max_args: int = 10


def max_reachable_length(max_depth: int, max_args: int) -> int:
    """Longest LRA length any tree can have (every node an operator with max_args arguments)."""
    length = 1  # a node at max_depth is a digit
    for _ in range(max_depth - 1):
        length = 2 + max_args * length
        if length > 10**9:  # far beyond any useful max_length
            break
    return length


@dataclass
class Ragged:
    """N variable-length id sequences: row i is flat[offsets[i]:offsets[i + 1]]."""

    flat: np.ndarray  # (total,) uint8 source ids
    offsets: np.ndarray  # (N + 1,) int64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    @classmethod
    def from_rows(cls, rows: list[np.ndarray]) -> Ragged:
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        flat = np.concatenate(rows).astype(np.uint8) if rows else np.zeros(0, np.uint8)
        return cls(flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    def take(self, idx: np.ndarray) -> Ragged:
        """Rows `idx`, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.lengths()[idx]  # (M,)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        shift = np.repeat(self.offsets[idx] - offsets[:-1], lengths)  # source start - target start, per id
        return Ragged(self.flat[np.arange(offsets[-1]) + shift], offsets)

    @classmethod
    def concat(cls, parts: list[Ragged]) -> Ragged:
        if not parts:
            return cls(np.zeros(0, np.uint8), np.zeros(1, np.int64))
        flat = np.concatenate([p.flat for p in parts])
        lengths = np.concatenate([p.lengths() for p in parts])
        return cls(flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


# ---- text <-> ids -------------------------------------------------------------------------------
def text_to_ids(text: str) -> np.ndarray:
    """`( ( [MAX 2 ) 9 ) ] )` or `[MAX 2 9 ]` -> uint8 source ids; ValueError names an unknown token."""
    spaced = text.replace("(", " ( ").replace(")", " ) ").replace("]", " ] ").replace("[", " [")
    tokens = spaced.split()
    try:
        return np.fromiter(map(_TOKEN_ID.__getitem__, tokens), dtype=np.uint8, count=len(tokens))
    except KeyError as e:
        known = " ".join(SOURCE_VOCAB[1:])
        raise ValueError(f"unknown ListOps token {e.args[0]!r}; expected one of: {known}") from None


class BadRow(ValueError):
    """Text `row` of a batch is not a ListOps expression."""

    def __init__(self, row: int, message: str) -> None:
        super().__init__(message)
        self.row = row


_LEX_CHUNK = 2048  # texts lexed per numpy step
_SINGLE_BYTE_ID = np.zeros(256, dtype=np.uint8)  # one-character tokens; 0 = not one
for _tok in ("(", ")", "]", *"0123456789"):
    _SINGLE_BYTE_ID[ord(_tok)] = _TOKEN_ID[_tok]


def _lex_fast(text: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Whitespace-separated tokens of `text` -> (ids uint8, token starts); None if any is unknown.

    Offsets refer to `b" " + text`; the padding spaces make every token start after and end before a space."""
    b = np.frombuffer(b" " + text + b"    ", dtype=np.uint8)
    space = b <= 32
    start = np.flatnonzero(space[:-1] & ~space[1:]) + 1  # (n,)
    end = np.flatnonzero(~space[:-1] & space[1:]) + 1  # (n,) one past each token
    length, first = end - start, b[start]
    ids = _SINGLE_BYTE_ID[first]
    ids[length != 1] = 0
    bracket = np.flatnonzero(first == ord("["))  # operator candidates, compared byte by byte
    for tok in OPS:  # "[MAX" ... "[SM"
        match = length[bracket] == len(tok)
        for j, ch in enumerate(tok.encode()[1:], start=1):
            match &= b[start[bracket] + j] == ch
        ids[bracket[match]] = _TOKEN_ID[tok]
    return (ids, start) if ids.all() else None


def texts_to_ragged(texts: list[str]) -> Ragged:
    """Many ListOps strings -> their source ids; BadRow names the first text that is not one."""
    parts = []
    for lo in range(0, len(texts), _LEX_CHUNK):
        chunk = texts[lo : lo + _LEX_CHUNK]
        joined = "\n".join(chunk).encode()
        lexed = _lex_fast(joined) if joined.isascii() else None
        if lexed is None:  # unusual spacing or an unknown token: the general path, text by text
            parts.append(Ragged.from_rows([_text_to_ids_at(lo + i, t) for i, t in enumerate(chunk)]))
            continue
        ids, start = lexed
        newlines = np.flatnonzero(np.frombuffer(joined, dtype=np.uint8) == ord("\n")) + 1  # (len(chunk) - 1,)
        counts = np.bincount(np.searchsorted(newlines, start), minlength=len(chunk))  # tokens per text
        parts.append(Ragged(ids, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)))
    return Ragged.concat(parts)


def _text_to_ids_at(row: int, text: str) -> np.ndarray:
    try:
        return text_to_ids(text)
    except ValueError as e:
        raise BadRow(row, str(e)) from None


def ids_to_text(ids: np.ndarray) -> str:
    return " ".join(SOURCE_VOCAB[i] for i in ids)


# ---- generation ---------------------------------------------------------------------------------
@dataclass
class _Level:
    """The nodes at one depth of a batch of trees, children grouped by parent in parent order."""

    tree: np.ndarray  # (n,) which root each node belongs to
    parent: np.ndarray  # (n,) index of the parent in the previous level (-1 at the roots)
    nargs: np.ndarray  # (n,) number of arguments; 0 for a digit
    sym: np.ndarray  # (n,) source id: DIGIT0 + d or OP0 + k


def _grow(n_roots: int, s: GenSettings, rng: np.random.Generator) -> tuple[list[_Level], np.ndarray]:
    """Grow n_roots trees level by level; return the levels and a mask of the roots to keep."""
    levels: list[_Level] = []
    tree = np.arange(n_roots)
    parent = np.full(n_roots, -1)
    length = np.zeros(n_roots, dtype=np.int64)  # LRA length so far, per root
    alive = np.ones(n_roots, dtype=bool)  # False once a root is certain to reach max_length
    for depth in range(1, s.max_depth + 1):
        n = len(tree)
        is_op = rng.random(n) <= OP_PROB if depth < s.max_depth else np.zeros(n, dtype=bool)
        nargs = np.where(is_op, rng.integers(2, s.max_args + 1, n), 0)
        sym = np.where(is_op, OP0 + rng.integers(0, len(OPS), n), DIGIT0 + rng.integers(0, 10, n))
        levels.append(_Level(tree, parent, nargs, sym.astype(np.uint8)))
        length += np.bincount(tree, weights=np.where(is_op, 2, 1), minlength=n_roots).astype(np.int64)
        pending = np.bincount(tree, weights=nargs, minlength=n_roots).astype(np.int64)  # >= 1 token each
        alive &= length + pending < s.max_length  # prune: too long already, whatever comes next
        child_parent = np.repeat(np.arange(n), nargs)
        child_parent = child_parent[alive[tree[child_parent]]]
        if len(child_parent) == 0:
            break
        tree, parent = tree[child_parent], child_parent
    return levels, alive & (length > s.min_length) & (length < s.max_length)


def _select(levels: list[_Level], keep_root: np.ndarray) -> list[_Level]:
    """Only the nodes of kept roots (all their nodes are present: kept roots were never pruned)."""
    new_root = np.cumsum(keep_root) - 1
    out: list[_Level] = []
    prev_index = None
    for lv in levels:
        keep = keep_root[lv.tree]
        if not keep.any():
            break
        parent = lv.parent[keep] if prev_index is None else prev_index[lv.parent[keep]]
        out.append(_Level(new_root[lv.tree[keep]], parent, lv.nargs[keep], lv.sym[keep]))
        prev_index = np.cumsum(keep) - 1
    return out


def _segments(nargs: np.ndarray) -> np.ndarray:
    """Start of each operator's run of children in the next level: exclusive cumsum of nargs."""
    return np.concatenate([[0], np.cumsum(nargs)[:-1]]).astype(np.int64)


def _reduce(ops: np.ndarray, nargs: np.ndarray, child_val: np.ndarray) -> np.ndarray:
    """Value of each operator node (ops: operator index k) over its children's values."""
    starts = _segments(nargs)  # (m,)
    seg = np.repeat(np.arange(len(nargs)), nargs)  # (children,)
    ranked = child_val[np.lexsort((child_val, seg))]  # children sorted within each operator
    median = (ranked[starts + (nargs - 1) // 2] + ranked[starts + nargs // 2]) // 2  # int(np.median)
    by_op = np.stack(
        [  # (4, m), rows in OPS order: MAX, MED, MIN, SM
            np.maximum.reduceat(child_val, starts),
            median,
            np.minimum.reduceat(child_val, starts),
            np.add.reduceat(child_val, starts) % 10,
        ]
    )
    return by_op[ops, np.arange(len(nargs))]


def _evaluate(levels: list[_Level]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Bottom-up: each node's value and its size in tokens of LRA's parenthesised text."""
    values: list[np.ndarray] = [None] * len(levels)  # type: ignore[list-item]
    sizes: list[np.ndarray] = [None] * len(levels)  # type: ignore[list-item]
    for d in range(len(levels) - 1, -1, -1):
        lv = levels[d]
        val = lv.sym.astype(np.int64) - DIGIT0
        size = np.ones(len(lv.sym), dtype=np.int64)
        op = lv.nargs > 0
        if op.any():
            n = lv.nargs[op]
            val[op] = _reduce(lv.sym[op].astype(np.int64) - OP0, n, values[d + 1])
            # (n + 1) "(" + "[OP" + children, each followed by ")" + "]" + ")"
            size[op] = 2 * n + 4 + np.add.reduceat(sizes[d + 1], _segments(n))
        values[d], sizes[d] = val, size
    return values, sizes


def _write(levels: list[_Level], sizes: list[np.ndarray]) -> Ragged:
    """Top-down: place every token of LRA's text form; untouched slots are the opening "("."""
    offsets = np.concatenate([[0], np.cumsum(sizes[0])]).astype(np.int64)
    buf = np.full(offsets[-1], LPAR, dtype=np.uint8)
    pos = offsets[:-1].copy()  # start of each node of the current level in buf
    for d, lv in enumerate(levels):
        leaf = lv.nargs == 0
        buf[pos[leaf]] = lv.sym[leaf]
        p, n, s = pos[~leaf], lv.nargs[~leaf], sizes[d][~leaf]
        buf[p + n + 1] = lv.sym[~leaf]
        buf[p + s - 2] = CLOSE
        buf[p + s - 1] = RPAR
        if d + 1 == len(levels):
            break
        step = sizes[d + 1] + 1  # each child, then its ")"
        before = np.cumsum(step) - step  # exclusive cumsum over the whole level
        within = before - np.repeat(before[_segments(n)], n)  # ... restarted at each operator
        pos = np.repeat(p + n + 2, n) + within
        buf[pos + sizes[d + 1]] = RPAR
    return Ragged(buf, offsets)


def generate_batch(s: GenSettings, rng: np.random.Generator, n_roots: int = BATCH_ROOTS) -> tuple[Ragged, np.ndarray]:
    """Grow n_roots trees; return the kept ones as LRA text ids and their labels (in root order)."""
    levels, keep = _grow(n_roots, s, rng)
    if not keep.any():
        return Ragged.concat([]), np.zeros(0, dtype=np.int64)
    levels = _select(levels, keep)
    values, sizes = _evaluate(levels)
    return _write(levels, sizes), values[0]


def _row_key(r: Ragged, i: int) -> bytes:
    return hashlib.blake2b(r.row(i).tobytes(), digest_size=16).digest()


def generate(n: int, s: GenSettings, rng: np.random.Generator) -> tuple[Ragged, np.ndarray]:
    """n distinct samples (LRA text ids, labels int64 (n,)) in the order they were drawn."""
    parts, labels, seen = [], [], set()
    have, fruitless = 0, 0
    while have < n:
        rows, vals = generate_batch(s, rng)
        fresh = []
        for i in range(len(rows)):
            key = _row_key(rows, i)
            if key not in seen:
                seen.add(key)
                fresh.append(i)
        fresh = fresh[: n - have]
        fruitless = 0 if fresh else fruitless + BATCH_ROOTS
        if fruitless >= _MAX_FRUITLESS_ROOTS:
            raise ConfigError(
                f"listops generator: {fruitless} trees in a row gave no new sample (have {have} of {n}); "
                f"the settings {s} admit too few distinct expressions. Widen min_length..max_length, "
                "raise max_depth / max_args, or ask for fewer samples."
            )
        parts.append(rows.take(np.array(fresh, dtype=np.int64)))
        labels.append(vals[fresh])
        have += len(fresh)
    return Ragged.concat(parts), np.concatenate(labels).astype(np.int64)
