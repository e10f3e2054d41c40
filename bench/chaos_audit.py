"""The chaos suite's measuring side (bench/chaos.py): sizes, the two database backends, database
snapshots, the audit that counts rows lost and duplicates, verdicts, and the fault registry.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("FPTLAB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TRAIN_KEYS = ("train_loss", "train_accuracy", "grad_norm")  # logged at every step
EVAL_KEYS = ("test_loss", "test_accuracy")  # logged at every evaluation
CHECKPOINT = re.compile(r"^checkpoint-(?P<tag>[0-9a-f]{8})-a(?P<attempt>\d+)-s(?P<step>\d+)\.pt$")
PG_DEFAULT_URL = "postgresql+psycopg:///fptlab_test"


class Skip(Exception):
    """A prerequisite of the fault is missing here: reported as skipped, never as survived."""


# ---- sizes -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Size:
    steps: int
    eval_every: int
    cells: int = 2  # lr values, one seed

    def eval_steps(self) -> list[int]:
        return [s for s in range(1, self.steps + 1) if s % self.eval_every == 0 or s == self.steps]

    def expected(self) -> set[tuple[str, int]]:
        """The (key, step) rows a completed trial of this size records."""
        rows = {(k, s) for s in range(1, self.steps + 1) for k in TRAIN_KEYS}
        return rows | {(k, s) for s in self.eval_steps() for k in EVAL_KEYS}


@dataclass(frozen=True)
class Plan:
    long: Size  # a trial that is still running when the fault hits
    short: Size  # whole sweeps where timing does not matter
    many: Size  # several cells, for two drivers sharing them


FULL = Plan(long=Size(400, 25), short=Size(60, 20), many=Size(40, 20, cells=6))
QUICK = Plan(long=Size(200, 20, cells=1), short=Size(20, 10, cells=1), many=Size(20, 10, cells=4))


# ---- backends --------------------------------------------------------------------------------------
class SQLite:
    name = "sqlite"

    def unavailable(self) -> str | None:
        return None

    def new_db(self, where: Path) -> str:
        return f"sqlite:///{where / f'fptlab-{uuid.uuid4().hex[:6]}.db'}"

    def drop(self, url: str) -> None:
        pass


class Postgres:
    name = "postgres"

    def __init__(self) -> None:
        self.base = os.environ.get("FPTLAB_TEST_PG_URL") or PG_DEFAULT_URL
        self._reason: str | None = None
        self._checked = False

    def _admin(self, sql: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.base)
        try:
            with engine.begin() as connection:
                connection.execute(text(sql))
        finally:
            engine.dispose()

    def unavailable(self) -> str | None:
        if not self._checked:
            self._checked = True
            try:
                self._admin("SELECT 1")
            except Exception as e:  # noqa: BLE001 - any failure means no server to test against
                self._reason = f"PostgreSQL unreachable ({type(e).__name__}); set FPTLAB_TEST_PG_URL"
        return self._reason

    def new_db(self, where: Path) -> str:
        from sqlalchemy.engine import make_url

        schema = f"fpt_chaos_{uuid.uuid4().hex[:10]}"
        self._admin(f'CREATE SCHEMA "{schema}"')
        url = make_url(self.base)
        options = f"{url.query.get('options', '')} -csearch_path={schema}".strip()
        return url.update_query_dict({"options": options}).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        schema = re.search(r"search_path%3D(\w+)|search_path=(\w+)", url)
        if schema:
            try:
                self._admin(f'DROP SCHEMA IF EXISTS "{schema.group(1) or schema.group(2)}" CASCADE')
            except Exception:  # noqa: BLE001 - best effort; the server may be down after a failed fault
                pass


BACKENDS: dict[str, Any] = {"sqlite": SQLite(), "postgres": Postgres()}


# ---- database reads ----------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """What one database holds: trials by config hash, metric values by (hash, key, step), results."""

    trials: dict[str, dict] = field(default_factory=dict)
    values: dict[tuple[str, str, int], float] = field(default_factory=dict)
    results: dict[str, dict] = field(default_factory=dict)

    def evals(self, config_hash: str) -> int:
        return sum(1 for (h, k, _s) in self.values if h == config_hash and k == "test_accuracy")

    def recorded_through(self, config_hash: str) -> int:
        steps, through = {s for (h, k, s) in self.values if h == config_hash and k == "train_loss"}, 0
        while through + 1 in steps:
            through += 1
        return through

    def running(self) -> list[str]:
        return [h for h, t in self.trials.items() if t["status"] == "running"]


def snapshot(url: str) -> Snapshot:
    """Read the database; an empty Snapshot when it does not exist yet (an SQLite file is never created here)."""
    from fptlab.store import Store

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return Snapshot()
    store = Store(url, outage_seconds=0)
    try:
        if store.revision() is None:
            return Snapshot()
        trials = {t["config_hash"]: t for t in store.trials()}
        values = {(h, k, s): v for h, k, s, v in store.curves()}
        return Snapshot(trials, values, store.results())
    finally:
        store.close()


def try_snapshot(url: str) -> Snapshot | None:
    try:
        return snapshot(url)
    except Exception:  # noqa: BLE001 - the driver is creating the schema, or the server is down
        return None


def reported_rows(storage: Path, exclude: Iterable[Path] = ()) -> Iterator[tuple[str, str, int, float]]:
    """Every (hash, key, step, value) a worker reported, from Tune's result.json files under `storage`."""
    from fptlab.sinks import from_jsonable

    skip = {Path(p) for p in exclude}
    for path in sorted((storage / "tune").glob("*/*/result.json")):
        if path.parent.parent in skip:
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
                config_hash = record["config"]["config_hash"]
                for step, key, value in record.get("fpt_rows") or ():
                    yield config_hash, key, int(step), float(from_jsonable(value))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill, or not a report of ours


# ---- the audit ---------------------------------------------------------------------------------------
@dataclass
class Audit:
    lost: int
    duplicates: int
    notes: list[str]
    final: Snapshot

    def all_completed(self, hashes: Iterable[str]) -> bool:
        return all(self.final.trials.get(h, {}).get("status") == "completed" for h in hashes)

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicates == 0


def audit(url: str, hashes: list[str], size: Size, storage: Path, snapshots: Iterable[Snapshot] = (),
          exclude_tune: Iterable[Path] = ()) -> Audit:
    """Rows lost and duplicates (see the module docstring) of the cells `hashes` of one spec."""
    final = snapshot(url)
    expected, lost, extra, notes = size.expected(), 0, 0, []
    for h in hashes:
        present = {(k, s) for (t, k, s) in final.values if t == h}
        missing = len(expected - present)
        lost += missing
        extra += len(present - expected)
        status = final.trials.get(h, {}).get("status", "absent")
        if missing and status == "completed":
            notes.append(f"{h} completed with {len(expected) - missing}/{len(expected)} rows")
    seen: dict[tuple[str, str, int], set[str]] = {}
    sources = [final.values, *(s.values for s in snapshots)]
    for values in sources:
        for key, value in values.items():
            seen.setdefault(key, set()).add(repr(float(value)))
    for h, k, s, v in reported_rows(storage, exclude_tune):
        if h in hashes:
            seen.setdefault((h, k, s), set()).add(repr(v))
    divergent = sorted(key for key, vals in seen.items() if key[0] in hashes and len(vals) > 1)
    if divergent:
        notes.append(f"{len(divergent)} rows with 2+ values, e.g. {divergent[0]}: {sorted(seen[divergent[0]])[:2]}")
    if extra:
        notes.append(f"{extra} rows outside the expected steps")
    return Audit(lost, len(divergent) + extra, notes, final)



@dataclass
class Verdict:
    ok: bool
    lost: int | None
    duplicates: int | None
    detail: str


def verdict(checks: dict[str, bool], result: Audit | None, *details: str) -> Verdict:
    """Survived iff every named check holds and the audit (if any) is clean; failed checks lead the detail."""
    failed = [name for name, ok in checks.items() if not ok]
    notes = ([f"FAILED: {', '.join(failed)}"] if failed else []) + [d for d in details if d]
    if result is not None:
        notes += result.notes
    ok = not failed and (result is None or result.clean)
    return Verdict(ok, result.lost if result else None, result.duplicates if result else None, "; ".join(notes))


def progress(at_fault: Snapshot, final: Snapshot, hashes: Iterable[str]) -> str:
    """How far the database had each trial when the fault hit, and where its resume started."""
    hashes = list(hashes)
    return (f"recorded through step {', '.join(str(at_fault.recorded_through(h)) for h in hashes)} at the fault, "
            + resumed_from(final, hashes))


def resumed_from(snap: Snapshot, hashes: Iterable[str]) -> str:
    steps = [snap.results.get(h, {}).get("resumed_from") for h in hashes]
    return "resumed from step " + ", ".join("?" if s is None else str(int(s)) for s in steps)



# ---- the faults --------------------------------------------------------------------------------------
FAULTS: dict[str, tuple[Callable[[Any, Plan], Verdict], tuple[str, ...]]] = {}


def fault(name: str, backends: tuple[str, ...] = ("sqlite", "postgres")) -> Callable:
    def register(fn: Callable[[Any, Plan], Verdict]) -> Callable[[Any, Plan], Verdict]:
        FAULTS[name] = (fn, backends)
        return fn

    return register
