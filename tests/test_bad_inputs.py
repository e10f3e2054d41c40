"""Hostile and mistaken command lines, table-driven: every case exits non-zero with one clear message
(a paragraph starting "Error:" that names the bad value, or Typer's own usage error for a value of
the wrong type), never a traceback, and leaves everything on disk byte-for-byte as it was: the
prepared SQLite database (its -wal/-shm files included), a database that did not exist (it stays
missing), output files and folders (none appear).

Every case runs in one working folder holding a prepared database with a registered experiment,
a valid tiny sweep spec, broken specs and a plain file; the whole folder is snapshotted before and
after each case."""

from __future__ import annotations

import gc
import inspect
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fptlab.cli import app
from fptlab.config import config_from_dict
from fptlab.errors import FptlabError
from fptlab.store import Store, StoreSink
from fptlab.sweep.options import HEARTBEAT_SECONDS, SweepOptions, check_resources

DB = "sqlite:///results.db"
PG_REFUSED = "postgresql+psycopg://fptlab@127.0.0.1:1/fptlab?connect_timeout=2"
PG_NO_HOST = "postgresql+psycopg://fptlab@nohost.invalid/fptlab?connect_timeout=2"

SPEC = """\
[experiment]
name = "bad-inputs"

[defaults]
task = "bit_xor"
backbone = "bert-tiny"
init = "random"
steps = 2
eval_every = 1
batch_size = 4

[defaults.bit_xor]
n_bits = 3
test_size = 8

[grid]
seed = [0, 1]
"""
HEAD = '[experiment]\nname = "broken"\n[defaults]\ntask = "bit_xor"\nbackbone = "bert-tiny"\ninit = "random"\n'
BROKEN_SPECS = {
    "not-toml.toml": HEAD + "[grid]\nlr = = 3\n",
    "empty.toml": "",
    "unknown-key.toml": HEAD + "lrr = 1e-3\n",
    "wrong-type.toml": HEAD + 'steps = "many"\n',
    "empty-grid.toml": HEAD + "[grid]\nlr = []\n",
    "unknown-task.toml": HEAD.replace("bit_xor", "bit_xr"),
    "unknown-backbone.toml": HEAD.replace("bert-tiny", "bert-tiyn"),
    "seed-too-large.toml": HEAD + "[grid]\nseed = [0, 3000000000]\n",
    "seeds-too-large.toml": "seeds = [3000000000]\n" + HEAD,
    "steps-too-large.toml": HEAD + "steps = 3000000000\n",
    "unknown-source.toml": HEAD.replace('init = "random"\n', 'weights = "source:bti"\n') + '[sources.bit]\ntask = "bit_memory"\ninit = "random"\n',
    "source-undeclared.toml": HEAD.replace('init = "random"\n', 'weights = "source:bit"\n'),
    "missing-data.toml": HEAD.replace("bit_xor", "cifar10"),
    "missing-base.toml": '[experiment]\nname = "broken"\nbase = "nowhere.toml"\n',
    "base-dot.toml": '[experiment]\nname = "broken"\nbase = "."\n',
    "base-fifo.toml": '[experiment]\nname = "broken"\nbase = "../fifo"\n',
    "base-loop.toml": '[experiment]\nname = "broken"\nbase = "../loop1"\n',
    "base-dev-zero.toml": '[experiment]\nname = "broken"\nbase = "/dev/zero"\n',
    "bom.toml": "\ufeff" + HEAD,
    "present-empty-grid.toml": HEAD + "[grid]\n",
    "long-value.toml": HEAD + 'steps = "' + "x" * 1_000_000 + '"\n',
    "long-key.toml": HEAD + "k" * 1_000_000 + " = 1\n",
    # [tune]: refused before anything runs, naming the value
    "tune-untunable.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"train\"\nvalues = [1, 2]\n",
    "tune-unknown-key.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"lrate\"\nvalues = [1e-3, 1e-4]\n",
    "tune-seed.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"seed\"\nvalues = [0, 1]\n",
    "tune-empty-values.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"lr\"\nvalues = []\n",
    "tune-one-value.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"lr\"\nvalues = [1e-3]\n",
    "tune-low-above-high.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"lr\"\nrange = { low = 1e-2, high = 1e-4, count = 3 }\n",
    "tune-count-one.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"lr\"\nrange = { low = 1e-4, high = 1e-2, count = 1 }\n",
    "tune-log-zero.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"lr\"\nrange = { low = 0, high = 1e-2, count = 3 }\n",
    "tune-metric.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"lr\"\nvalues = [1e-3, 1e-4]\nmetric = \"test_accuracy\"\n",
    "tune-no-validation.toml": HEAD + "[tune]\nkey = \"lr\"\nvalues = [1e-3, 1e-4]\n",
    "tune-both-values-and-range.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"lr\"\nvalues = [1e-3, 1e-4]\n"
                                       "range = { low = 1e-4, high = 1e-2, count = 3 }\n",
    "tune-also-an-axis.toml": HEAD + "val_fraction = 0.2\n[grid]\nlr = [1e-3]\n[tune]\nkey = \"lr\"\nvalues = [1e-3, 1e-4]\n",
    "tune-rung-past-end.toml": HEAD + "val_fraction = 0.2\nsteps = 20\neval_every = 5\n[tune]\nkey = \"lr\"\nvalues = [1e-3, 1e-4]\n"
                               "halving = { eta = 3, rungs = [20] }\n",
    "tune-rung-not-an-eval.toml": HEAD + "val_fraction = 0.2\nsteps = 20\neval_every = 5\n[tune]\nkey = \"lr\"\nvalues = [1e-3, 1e-4]\n"
                                  "halving = { eta = 3, rungs = [7] }\n",
    "tune-eta-one.toml": HEAD + "val_fraction = 0.2\n[tune]\nkey = \"lr\"\nvalues = [1e-3, 1e-4]\nhalving = { eta = 1, rungs = [0.5] }\n",
}


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    says: tuple[str, ...]  # fragments the message must contain (the bad value among them)
    exit_code: int = 1  # 2: Typer's own usage error (a value of the wrong type, an unknown option)


def case(id: str, *args: str, says: str | tuple[str, ...], exit_code: int = 1) -> Case:
    return Case(id, args, (says,) if isinstance(says, str) else says, exit_code)


SWEEP = ("sweep", "spec.toml", "--db", DB, "--no-progress")
CASES = [
    # ---- fptlab sweep: options ------------------------------------------------------------------
    case("sweep-cpus-per-trial-zero", *SWEEP, "--cpus-per-trial", "0", says=("--cpus-per-trial", "got 0")),
    case("sweep-cpus-per-trial-negative", *SWEEP, "--cpus-per-trial", "-1", says=("--cpus-per-trial", "got -1")),
    case("sweep-cpus-per-trial-nan", *SWEEP, "--cpus-per-trial", "nan", says=("--cpus-per-trial", "got nan")),
    case("sweep-cpus-per-trial-inf", *SWEEP, "--cpus-per-trial", "inf", says=("--cpus-per-trial", "got inf")),
    case("sweep-cpus-per-trial-more-than-here", *SWEEP, "--cpus-per-trial", "100", says=("asks for 100 CPUs", "embedded Ray has")),
    case("sweep-cpus-per-trial-more-than-num-cpus", *SWEEP, "--num-cpus", "1", "--cpus-per-trial", "2",
         says=("asks for 2 CPUs", "embedded Ray has 1 (--num-cpus 1)")),
    case("sweep-cpus-per-trial-not-a-number", *SWEEP, "--cpus-per-trial", "many", says="Invalid value for '--cpus-per-trial'", exit_code=2),
    case("sweep-gpus-per-trial-negative", *SWEEP, "--gpus-per-trial", "-0.5", says=("--gpus-per-trial", "got -0.5")),
    case("sweep-gpus-per-trial-more-than-here", *SWEEP, "--gpus-per-trial", "4096", says=("4096 GPU each", "this machine has")),
    case("sweep-num-cpus-zero", *SWEEP, "--num-cpus", "0", says=("--num-cpus", "got 0")),
    case("sweep-num-cpus-negative", *SWEEP, "--num-cpus", "-4", says=("--num-cpus", "got -4")),
    case("sweep-num-cpus-with-address", *SWEEP, "--num-cpus", "2", "--address", "10.0.0.5:6379", says=("--num-cpus", "10.0.0.5:6379")),
    case("sweep-lease-zero", *SWEEP, "--lease", "0", says=("--lease", "got 0", f"{HEARTBEAT_SECONDS:g} s")),
    case("sweep-lease-negative", *SWEEP, "--lease", "-10", says=("--lease", "got -10")),
    case("sweep-lease-nan", *SWEEP, "--lease", "nan", says=("--lease", "got nan")),
    case("sweep-lease-inf", *SWEEP, "--lease", "inf", says=("--lease", "got inf")),
    case("sweep-lease-not-above-heartbeat", *SWEEP, "--lease", f"{HEARTBEAT_SECONDS:g}", says=("--lease", f"got {HEARTBEAT_SECONDS:g}")),
    case("sweep-retries-negative", *SWEEP, "--retries", "-1", says=("--retries", "got -1")),
    case("sweep-retries-huge", *SWEEP, "--retries", "3000000000", says=("--retries", "got 3000000000")),
    case("sweep-retries-fraction", *SWEEP, "--retries", "1.5", says="Invalid value for '--retries'", exit_code=2),
    case("sweep-max-concurrent-zero", *SWEEP, "--max-concurrent", "0", says=("--max-concurrent", "got 0")),
    case("sweep-max-concurrent-negative", *SWEEP, "--max-concurrent", "-3", says=("--max-concurrent", "got -3")),
    case("sweep-storage-is-a-file", *SWEEP, "--storage", "afile", says=("--storage afile", "is a file")),
    case("sweep-storage-under-a-file", *SWEEP, "--storage", "afile/runs", says=("--storage afile/runs", "is a file")),
    case("sweep-data-dir-is-a-file", *SWEEP, "--data-dir", "afile", says=("--data-dir", "afile", "is a file")),
    case("sweep-address-refused", *SWEEP, "--address", "127.0.0.1:1", says=("127.0.0.1:1", "Cannot reach the Ray cluster")),
    case("sweep-address-empty", *SWEEP, "--address", " ", says="--address is empty"),
    case("sweep-db-outage-negative", *SWEEP, "--db-outage", "-1", says=("--db-outage", "got -1")),
    case("sweep-unknown-option", *SWEEP, "--cpu-per-trial", "1", says="No such option: --cpu-per-trial", exit_code=2),
    case("sweep-dry-run-checks-options-too", *SWEEP, "--dry-run", "--lease", "nan", says=("--lease", "got nan")),
    # ---- fptlab sweep: databases ----------------------------------------------------------------
    case("sweep-db-in-memory", "sweep", "spec.toml", "--db", "sqlite:///:memory:", says=("sqlite:///:memory:", "in-memory")),
    case("sweep-db-sqlite-without-path", "sweep", "spec.toml", "--db", "sqlite://", says=("sqlite://", "in-memory")),
    case("sweep-db-folder-missing", "sweep", "spec.toml", "--db", "sqlite:///nodir/x.db", says=("nodir", "does not exist")),
    case("sweep-db-folder-is-a-file", "sweep", "spec.toml", "--db", "sqlite:///afile/x.db", says=("afile", "is a file, not a folder")),
    case("sweep-db-is-a-folder", "sweep", "spec.toml", "--db", "sqlite:///specs", says=("sqlite:///specs", "folder")),
    case("sweep-db-not-a-database", "sweep", "spec.toml", "--db", "sqlite:///spec.toml", says=("spec.toml", "not a database")),
    case("sweep-db-not-a-url", "sweep", "spec.toml", "--db", "results.db", says=("'results.db' is not a database URL",)),
    case("sweep-db-unsupported", "sweep", "spec.toml", "--db", "mysql://u@h/db", says=("mysql://u@h/db", "sqlite or postgresql")),
    case("sweep-db-postgres-refused", "sweep", "spec.toml", "--db", PG_REFUSED, says=("127.0.0.1:1", "Connection refused")),
    # ---- fptlab sweep: spec files ---------------------------------------------------------------
    case("sweep-spec-missing", "sweep", "nothere.toml", "--db", DB, says=("nothere.toml", "not found")),
    case("sweep-spec-is-a-folder", "sweep", "specs", "--db", DB, says=("specs is a folder",)),
    case("sweep-spec-not-toml", "sweep", "specs/not-toml.toml", "--db", DB, says=("specs/not-toml.toml", "not valid TOML")),
    # ---- fptlab sweep: tuned comparisons ([tune], --tune-values) --------------------------------
    case("tune-untunable-key", "sweep", "specs/tune-untunable.toml", "--db", DB, says=("tune.key", "'train' is not numeric")),
    case("tune-unknown-key", "sweep", "specs/tune-unknown-key.toml", "--db", DB, says=("tune.key", "'lrate' is not a config key")),
    case("tune-the-seed", "sweep", "specs/tune-seed.toml", "--db", DB, says=("tune.key", "'seed' cannot be tuned")),
    case("tune-empty-values", "sweep", "specs/tune-empty-values.toml", "--db", DB, says=("tune.values", "non-empty list", "[]")),
    case("tune-one-value", "sweep", "specs/tune-one-value.toml", "--db", DB, says=("tune.values", "at least 2 candidates, got 1")),
    case("tune-low-above-high", "sweep", "specs/tune-low-above-high.toml", "--db", DB, says=("tune.range", "low (0.01) must be below high (0.0001)")),
    case("tune-count-one", "sweep", "specs/tune-count-one.toml", "--db", DB, says=("tune.range.count", "at least 2", "got 1")),
    case("tune-log-range-from-zero", "sweep", "specs/tune-log-zero.toml", "--db", DB, says=("tune.range.low", "low > 0, got 0", "log = false")),
    case("tune-metric-not-recorded", "sweep", "specs/tune-metric.toml", "--db", DB, says=("tune.metric", "'test_accuracy'", "val_accuracy")),
    case("tune-without-validation", "sweep", "specs/tune-no-validation.toml", "--db", DB, says=("tune", "val_fraction", "never reads the test split")),
    case("tune-values-and-range", "sweep", "specs/tune-both-values-and-range.toml", "--db", DB, says=("tune", "one of the two")),
    case("tune-key-also-an-axis", "sweep", "specs/tune-also-an-axis.toml", "--db", DB, says=("'lr' is already an axis at grid.lr",)),
    case("tune-rung-past-the-end", "sweep", "specs/tune-rung-past-end.toml", "--db", DB, says=("tune.halving.rungs", "last rung (20)", "20 steps")),
    case("tune-rung-not-an-evaluation", "sweep", "specs/tune-rung-not-an-eval.toml", "--db", DB, says=("tune.halving.rungs", "eval_every = 5", "[7]")),
    case("tune-eta-one", "sweep", "specs/tune-eta-one.toml", "--db", DB, says=("tune.halving.eta", ">= 2", "got 1")),
    case("tune-values-without-a-tune-table", *SWEEP, "--tune-values", "1e-3,1e-4", says=("--tune-values", "has none")),
    case("tune-values-not-numbers", *SWEEP, "--tune-values", "1e-3,fast", says=("--tune-values", "'fast' is not a finite number")),
    case("sweep-spec-binary", "sweep", "specs/binary.toml", "--db", DB, says=("specs/binary.toml", "cannot read")),
    case("sweep-spec-empty", "sweep", "specs/empty.toml", "--db", DB, says=("specs/empty.toml", "[experiment]")),
    case("sweep-spec-unknown-key", "sweep", "specs/unknown-key.toml", "--db", DB, says=("'lrr'", "Did you mean 'lr'?")),
    case("sweep-spec-wrong-type", "sweep", "specs/wrong-type.toml", "--db", DB, says=("'defaults.steps' must be an integer", "'many'")),
    case("sweep-spec-empty-grid-axis", "sweep", "specs/empty-grid.toml", "--db", DB, says=("grid.lr", "at least one value")),
    case("sweep-spec-unknown-task", "sweep", "specs/unknown-task.toml", "--db", DB, says=("'bit_xr'", "Did you mean 'bit_xor'?")),
    case("sweep-spec-unknown-backbone", "sweep", "specs/unknown-backbone.toml", "--db", DB, says=("'bert-tiyn'", "Did you mean 'bert-tiny'?")),
    case("sweep-spec-seed-too-large", "sweep", "specs/seed-too-large.toml", "--db", DB, says=("'seed' = 3000000000", "2,147,483,647")),
    case("sweep-spec-seeds-too-large", "sweep", "specs/seeds-too-large.toml", "--db", DB, says=("'seed' = 3000000000", "2,147,483,647")),
    case("sweep-spec-steps-too-large", "sweep", "specs/steps-too-large.toml", "--db", DB, says=("'steps' = 3000000000", "2,147,483,647")),
    case("sweep-spec-unknown-source", "sweep", "specs/unknown-source.toml", "--db", DB, says=("'bti'", "Did you mean 'bit'?")),
    case("sweep-spec-undeclared-source", "sweep", "specs/source-undeclared.toml", "--db", DB, says=("source 'bit'", "[sources.bit]")),
    case("sweep-spec-missing-base", "sweep", "specs/missing-base.toml", "--db", DB, says=("nowhere.toml", "not found")),
    case("sweep-spec-data-missing-here", "sweep", "specs/missing-data.toml", "--db", DB, says=("cannot run here", "Nothing was run or written")),
    # ---- paths that exist but are not regular files, a BOM, long values --------------------------
    case("sweep-spec-dev-zero", "sweep", "/dev/zero", "--db", DB, says=("/dev/zero", "character device")),
    case("sweep-spec-fifo", "sweep", "fifo", "--db", DB, says=("fifo", "FIFO")),
    case("sweep-spec-symlink-loop", "sweep", "loop1", "--db", DB, says=("loop1", "symlink loop")),
    case("sweep-spec-base-dot", "sweep", "specs/base-dot.toml", "--db", DB, says=("base spec '.'", "is a folder")),
    case("sweep-spec-base-fifo", "sweep", "specs/base-fifo.toml", "--db", DB, says=("'../fifo'", "FIFO")),
    case("sweep-spec-base-loop", "sweep", "specs/base-loop.toml", "--db", DB, says=("'../loop1'", "symlink loop")),
    case("sweep-spec-base-dev-zero", "sweep", "specs/base-dev-zero.toml", "--db", DB, says=("'/dev/zero'", "character device")),
    case("sweep-spec-bom", "sweep", "specs/bom.toml", "--db", DB, says=("specs/bom.toml", "byte-order mark")),
    case("sweep-spec-present-empty-grid", "sweep", "specs/present-empty-grid.toml", "--db", DB, says=("grid", "is empty")),
    case("sweep-spec-long-value", "sweep", "specs/long-value.toml", "--db", DB, says=("'defaults.steps'", "(1,000,000 characters)")),
    case("sweep-spec-long-key", "sweep", "specs/long-key.toml", "--db", DB, says=("kkkk", "(1,000,0")),
    case("sweep-db-dev-zero", "sweep", "spec.toml", "--db", "sqlite:////dev/zero", says=("/dev/zero", "character device")),
    case("sweep-db-fifo", "sweep", "spec.toml", "--db", "sqlite:///fifo", says=("fifo", "FIFO")),
    case("sweep-db-symlink-loop", "sweep", "spec.toml", "--db", "sqlite:///loop1", says=("loop1", "symlink loop")),
    case("report-db-symlink-loop", "report", "--db", "sqlite:///loop1", "--table", "2", says=("loop1", "symlink loop")),
    case("status-db-fifo", "status", "--db", "sqlite:///fifo", says=("fifo", "FIFO")),
    case("run-config-dev-zero", "run", "--config", "/dev/zero", says=("/dev/zero", "character device")),
    case("run-config-fifo", "run", "--config", "fifo", says=("fifo", "FIFO")),
    case("run-config-symlink-loop", "run", "--config", "loop1", says=("loop1", "symlink loop")),
    case("run-config-bom", "run", "--config", "specs/bom.toml", says=("specs/bom.toml", "byte-order mark")),
    case("run-weights-fifo", "run", "--task", "bit_xor", "--backbone", "minilm", "--steps", "1", "--no-progress",
         "--set", "weights=fifo", says=("'fifo'", "FIFO")),
    case("run-weights-symlink-loop", "run", "--task", "bit_xor", "--backbone", "minilm", "--steps", "1", "--no-progress",
         "--set", "weights=loop1", says=("'loop1'", "symlink loop")),
    case("run-set-long-key", "run", "--task", "bit_xor", "--set", "k" * 1_000_000 + "=1", says=("kkkk", "(1,000,00")),
    case("run-set-long-value", "run", "--task", "bit_xor", "--set", "lr=\"" + "x" * 1_000_000 + "\"", "--dry-run",
         says=("'lr' must be a number", "(1,000,000 characters)")),
    case("run-long-task-name", "run", "--task", "t" * 1_000_000, "--dry-run", says=("Unknown task", "(1,000,00")),
    case("export-out-proc", "export", "--db", DB, "--out", "/proc/trials.csv", says=("/proc", "kernel")),
    case("export-out-dev-null", "export", "--db", DB, "--out", "/dev/null", says=("/dev/null", "character device")),
    case("report-out-fifo", "report", "--db", DB, "--table", "2", "--format", "md", "--out", "fifo", says=("fifo", "FIFO")),
    case("trials-where-seed-huge", "trials", "--db", DB, "--where", "seed=99999999999999999999", says=("seed", "32-bit")),
    case("trials-where-attempts-huge", "trials", "--db", DB, "--where", "attempts=-3000000000", says=("attempts", "32-bit")),
    # ---- fptlab run -----------------------------------------------------------------------------
    case("run-unknown-task", "run", "--task", "lstops", says=("'lstops'", "Did you mean 'listops'?")),
    case("run-unknown-backbone", "run", "--task", "bit_xor", "--backbone", "gtp2", says=("'gtp2'", "Did you mean 'gpt2'?")),
    case("run-unknown-init", "run", "--task", "bit_xor", "--init", "pretrianed", says=("'pretrianed'", "Did you mean 'pretrained'?")),
    case("run-seed-too-large", "run", "--task", "bit_xor", "--seed", "3000000000", "--dry-run", says=("'seed' = 3000000000", "2,147,483,647")),
    case("run-seed-negative", "run", "--task", "bit_xor", "--seed", "-1", "--dry-run", says=("'seed'", "got -1")),
    case("run-steps-zero", "run", "--task", "bit_xor", "--steps", "0", "--dry-run", says=("'steps'", "got 0")),
    case("run-steps-too-large", "run", "--task", "bit_xor", "--steps", "2147483648", "--dry-run", says=("'steps' = 2147483648",)),
    case("run-steps-not-a-number", "run", "--task", "bit_xor", "--steps", "ten", says="Invalid value for '--steps'", exit_code=2),
    case("run-lr-nan", "run", "--task", "bit_xor", "--lr", "nan", "--dry-run", says=("'lr'", "got nan")),
    case("run-threads-zero", "run", "--task", "bit_xor", "--threads", "0", says=("--threads", "got 0")),
    case("run-set-without-value", "run", "--task", "bit_xor", "--set", "lr", says=("--set 'lr'", "KEY=VALUE")),
    case("run-set-unknown-key", "run", "--task", "bit_xor", "--set", "bit_xor.nbits=3", says=("'bit_xor.nbits'", "Did you mean 'bit_xor.n_bits'?")),
    case("run-set-seed-fraction", "run", "--task", "bit_xor", "--set", "seed=1.5", says=("'seed' must be an integer", "1.5")),
    case("run-config-missing", "run", "--config", "nothere.toml", says=("nothere.toml", "config file not found")),
    case("run-config-not-toml", "run", "--config", "specs/not-toml.toml", says=("specs/not-toml.toml", "not valid TOML")),
    case("run-out-is-a-file", "run", "--task", "bit_xor", "--backbone", "bert-tiny", "--init", "random", "--steps", "1",
         "--no-progress", "--out", "afile", says=("--out afile", "is a file")),
    case("run-out-under-a-file", "run", "--task", "bit_xor", "--backbone", "bert-tiny", "--init", "random", "--steps", "1",
         "--no-progress", "--out", "afile/runs", says=("--out afile/runs", "is a file")),
    case("run-data-dir-is-a-file", "run", "--task", "bit_xor", "--data-dir", "afile", "--dry-run", says=("--data-dir afile", "is a file")),
    # ---- fptlab status --------------------------------------------------------------------------
    case("status-default-db-missing", "status", says=("fptlab.db", "does not exist")),
    case("status-db-missing", "status", "--db", "sqlite:///missing.db", says=("missing.db", "does not exist")),
    case("status-db-empty-file", "status", "--db", "sqlite:///empty.db", says=("empty.db", "empty file")),
    case("status-db-in-memory", "status", "--db", "sqlite:///:memory:", says=("sqlite:///:memory:", "in-memory")),
    case("status-db-unsupported", "status", "--db", "oracle://u@h/db", says=("oracle://u@h/db", "sqlite or postgresql")),
    case("status-db-postgres-no-host", "status", "--db", PG_NO_HOST, says=("nohost.invalid",)),
    case("status-lease-nan", "status", "--db", DB, "--lease", "nan", says=("--lease", "got nan")),
    case("status-lease-zero", "status", "--db", DB, "--lease", "0", says=("--lease", "got 0")),
    case("status-spec-missing", "status", "nothere.toml", "--db", DB, says=("nothere.toml", "not found")),
    case("status-spec-is-a-folder", "status", "specs", "--db", DB, says=("specs is a folder",)),
    case("status-spec-unknown-key", "status", "specs/unknown-key.toml", "--db", DB, says=("'lrr'",)),
    case("status-data-dir-is-a-file", "status", "--db", DB, "--data-dir", "afile", says=("--data-dir afile", "is a file")),
    # ---- fptlab trials --------------------------------------------------------------------------
    case("trials-where-without-equals", "trials", "--db", DB, "--where", "task", says=("--where 'task'", "KEY=VALUE")),
    case("trials-where-without-key", "trials", "--db", DB, "--where", "=bit_xor", says=("--where '=bit_xor'", "KEY=VALUE")),
    case("trials-where-unknown-column", "trials", "--db", DB, "--where", "colour=red", says=("'colour'", "Filter on:")),
    case("trials-where-misspelt-column", "trials", "--db", DB, "--where", "tsk=bit_xor", says=("'tsk'", "Did you mean 'task'?")),
    case("trials-where-config-key", "trials", "--db", DB, "--where", "bit_xor.n_bits=3", says=("'bit_xor.n_bits'", "Filter on:")),
    case("trials-where-time-column", "trials", "--db", DB, "--where", "created=2024-01-01", says=("'created'", "Filter on:")),
    case("trials-where-seed-not-a-number", "trials", "--db", DB, "--where", "seed=abc", says=("'seed=abc'", "whole number")),
    case("trials-where-empty-value", "trials", "--db", DB, "--where", "task=", says=("'task='", "empty")),
    case("trials-where-unknown-task", "trials", "--db", DB, "--where", "task=bit_xr", says=("'bit_xr'", "Did you mean 'bit_xor'?")),
    case("trials-where-unknown-backbone", "trials", "--db", DB, "--where", "backbone=gtp2", says=("'gtp2'", "Did you mean 'gpt2'?")),
    case("trials-where-unknown-init", "trials", "--db", DB, "--where", "init=rand", says=("'rand'", "Available: pretrained, random, stats")),
    case("trials-where-unknown-status", "trials", "--db", DB, "--where", "status=done", says=("'done'", "completed")),
    case("trials-where-twice", "trials", "--db", DB, "--where", "task=bit_xor", "--where", "task=listops", says=("given twice", "'listops'")),
    case("trials-status-unknown", "trials", "--db", DB, "--status", "runing", says=("'runing'", "Did you mean 'running'?", "queued")),
    case("trials-experiment-unknown", "trials", "--db", DB, "--experiment", "prepard", says=("'prepard'", "Did you mean 'prepared'?")),
    case("trials-db-missing", "trials", "--db", "sqlite:///missing.db", says=("missing.db", "does not exist")),
    case("trials-db-in-memory", "trials", "--db", "sqlite://", says=("sqlite://", "in-memory")),
    case("trials-db-not-a-database", "trials", "--db", "sqlite:///afile", says=("afile", "not a database")),
    # ---- fptlab export --------------------------------------------------------------------------
    case("export-format-unknown", "export", "--db", DB, "--format", "xlsx", says=("'xlsx'", "csv, parquet")),
    case("export-format-misspelt", "export", "--db", DB, "--format", "parqet", says=("'parqet'", "Did you mean 'parquet'?")),
    case("export-out-folder-missing", "export", "--db", DB, "--out", "nodir/trials.csv", says=("nodir", "does not exist")),
    case("export-out-is-a-folder", "export", "--db", DB, "--out", "specs", says=("--out specs", "is a folder")),
    case("export-out-under-a-file", "export", "--db", DB, "--out", "afile/trials.csv", says=("afile", "is a file")),
    case("export-out-unwritable", "export", "--db", DB, "--out", "/proc/trials.csv", says=("/proc/trials.csv",)),
    case("export-experiment-unknown", "export", "--db", DB, "--experiment", "nope", says=("'nope'", "prepared")),
    case("export-db-missing", "export", "--db", "sqlite:///missing.db", "--out", "/tmp/fptlab-never.csv", says=("missing.db", "does not exist")),
    # ---- fptlab db ------------------------------------------------------------------------------
    case("db-upgrade-in-memory", "db", "upgrade", "--db", "sqlite:///:memory:", says=("sqlite:///:memory:", "in-memory")),
    case("db-upgrade-folder-missing", "db", "upgrade", "--db", "sqlite:///nodir/x.db", says=("nodir", "does not exist")),
    case("db-upgrade-folder-is-a-file", "db", "upgrade", "--db", "sqlite:///afile/x.db", says=("afile", "is a file, not a folder")),
    case("db-upgrade-is-a-folder", "db", "upgrade", "--db", "sqlite:///specs", says=("specs", "folder")),
    case("db-upgrade-not-a-url", "db", "upgrade", "--db", "fptlab.db", says=("'fptlab.db' is not a database URL",)),
    case("db-upgrade-unsupported", "db", "upgrade", "--db", "mssql://u@h/db", says=("mssql://u@h/db", "sqlite or postgresql")),
    case("db-upgrade-postgres-refused", "db", "upgrade", "--db", PG_REFUSED, says=("127.0.0.1:1",)),
    case("db-check-missing", "db", "check", "--db", "sqlite:///missing.db", says=("missing.db", "does not exist")),
    case("db-check-empty-file", "db", "check", "--db", "sqlite:///empty.db", says=("empty.db", "empty file")),
    case("db-check-not-a-database", "db", "check", "--db", "sqlite:///spec.toml", says=("spec.toml", "not a database")),
    case("db-check-postgres-no-host", "db", "check", "--db", PG_NO_HOST, says=("nohost.invalid",)),
    case("db-unknown-subcommand", "db", "upgrad", says="No such command 'upgrad'", exit_code=2),
    # ---- fptlab report --------------------------------------------------------------------------
    case("report-format-unknown", "report", "--db", DB, "--table", "2", "--format", "pdf", says=("'pdf'", "terminal, md")),
    case("report-table-99", "report", "--db", DB, "--table", "99", says=("'table99'", "Available:")),
    case("report-table-not-a-number", "report", "--db", DB, "--table", "two", says="Invalid value for '--table'", exit_code=2),
    case("report-table-negative", "report", "--db", DB, "--table", "-1", says=("'table-1'", "Available:")),
    case("report-figure-2", "report", "--db", DB, "--figure", "2", says=("'figure2'", "Available:")),
    case("report-unknown-name", "report", "--db", DB, "quickstrat", says=("'quickstrat'", "Did you mean 'quickstart'?")),
    case("report-nothing-asked", "report", "--db", DB, says=("Say what to report",)),
    case("report-experiments-missing", "report", "--db", DB, "--table", "2", "--experiments", "nodir", says=("--experiments nodir", "no such folder")),
    case("report-experiments-is-a-file", "report", "--db", DB, "--table", "2", "--experiments", "afile", says=("--experiments afile", "is a file")),
    case("report-out-unknown-suffix", "report", "--db", DB, "--table", "2", "--out", "table2.docx", says=("table2.docx", "'.docx'")),
    case("report-table-to-an-image", "report", "--db", DB, "--table", "2", "--out", "table2.png", says=("table2.png", "table2 is a table", ".html")),
    case("report-two-figures-to-an-image", "report", "--db", DB, "--figure", "3", "--figure", "4", "--out", "f.png", says=("f.png", "2 items")),
    case("export-format-mlflow-without-uri", "export", "--db", DB, "--format", "mlflow", says=("--tracking-uri",)),
    case("export-tracking-uri-for-csv", "export", "--db", DB, "--tracking-uri", "sqlite:///m.db", says=("--tracking-uri", "mlflow")),
    case("export-tensorboard-into-a-full-folder", "export", "--db", DB, "--format", "tensorboard", "--out", "specs", says=("specs", "not empty", "--force")),
    case("export-tensorboard-out-is-a-file", "export", "--db", DB, "--format", "tensorboard", "--out", "afile", says=("afile", "is a file")),
    case("export-mlflow-unreachable", "export", "--db", DB, "--format", "mlflow", "--tracking-uri", "http://127.0.0.1:1", says=("127.0.0.1:1", "Cannot reach")),
    case("report-out-is-a-folder", "report", "--db", DB, "--table", "2", "--out", "specs", says=("--out specs", "is a folder")),
    case("report-out-under-a-file", "report", "--db", DB, "--table", "2", "--out", "afile/table2.md", says=("afile", "is a file")),
    case("report-out-unwritable", "report", "--db", DB, "--table", "2", "--out", "/proc/table2.md", says=("/proc/table2.md",)),
    case("report-terminal-with-out", "report", "--db", DB, "--table", "2", "--format", "terminal", "--out", "t.md", says=("--out t.md", "terminal")),
    case("report-figures-dir-is-a-file", "report", "--db", DB, "--table", "2", "--format", "csv", "--figures-dir", "afile",
         says=("--figures-dir afile", "is a file")),
    case("report-db-in-memory", "report", "--db", "sqlite:///:memory:", "--table", "2", says=("sqlite:///:memory:", "in-memory")),
    case("report-db-not-a-url", "report", "--db", "results", "--table", "2", says=("'results' is not a database URL",)),
    # ---- fptlab ls ------------------------------------------------------------------------------
    case("ls-unknown-listing", "ls", "tsks", says=("'tsks'", "Did you mean 'tasks'?")),
    case("ls-nothing-asked", "ls", says="Missing argument 'what'", exit_code=2),
]


# ---- the working folder ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared database (schema, an experiment 'prepared' with a queued trial), a valid spec, broken
    specs under specs/, an empty file, a plain file `afile` and an empty data folder."""
    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "spec.toml").write_text(SPEC)
    (root / "specs").mkdir()
    for name, text in BROKEN_SPECS.items():
        (root / "specs" / name).write_text(text)
    (root / "specs" / "binary.toml").write_bytes(b"\xff\xfe\x00\x81 not text")
    (root / "afile").write_text("a plain file\n")
    (root / "empty.db").write_bytes(b"")
    (root / "data").mkdir()
    os.mkfifo(root / "fifo")  # reading it would block forever: every command must name it, never open it
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    url = f"sqlite:///{root / 'results.db'}"
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", url])
    assert result.exit_code == 0, result.output
    store = Store(url)
    cfg = config_from_dict({"task": "bit_xor", "backbone": "bert-tiny", "init": "random", "steps": 2, "bit_xor": {"n_bits": 3}})
    store.add_trials(store.upsert_experiment("prepared", "registered by the fixture", "{}", "0" * 16), [cfg])
    store.close()
    del store
    gc.collect()
    assert not list(root.glob("results.db-*")), "the fixture left SQLite's -wal/-shm files"
    return root


def snapshot(root: Path) -> dict[str, bytes | str | None]:
    """Every path under `root` with its bytes (None for a folder; a FIFO or symlink by its kind and
    target, never opened)."""
    out: dict[str, bytes | str | None] = {}
    for p in sorted(root.rglob("*")):
        mode = p.lstat().st_mode
        if stat.S_ISLNK(mode):
            out[str(p.relative_to(root))] = f"symlink -> {os.readlink(p)}"
        elif stat.S_ISFIFO(mode):
            out[str(p.relative_to(root))] = "fifo"
        else:
            out[str(p.relative_to(root))] = None if p.is_dir() else p.read_bytes()
    return out


@pytest.fixture
def at_work(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("FPTLAB_DB", raising=False)
    monkeypatch.delenv("FPTLAB_EXPERIMENTS", raising=False)
    monkeypatch.setenv("FPTLAB_DATA", str(workdir / "data"))
    monkeypatch.setenv("FPTLAB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "240")  # Typer's usage panels: one value per line, unwrapped
    return workdir


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    output: str
    exception: BaseException | None


def invoke(*args: str) -> Outcome:
    result = CliRunner().invoke(app, list(args))
    # What the command left for the exit to close: pooled SQLite connections, reachable from the
    # exception's frames. Drop them and collect, as the process exit would.
    exception = result.exception
    outcome = Outcome(result.exit_code, result.output, None if exception is None else type(exception)(*exception.args))
    del result, exception
    gc.collect()
    return outcome


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly_and_writes_nothing(c: Case, at_work: Path) -> None:
    before = snapshot(at_work)
    result = invoke(*c.args)
    output = result.output
    assert "Traceback" not in output, output
    assert result.exit_code == c.exit_code, f"exit {result.exit_code}: {output}"
    if not isinstance(result.exception, SystemExit):
        raise AssertionError(f"raised {result.exception!r}: {output}")
    text = output.strip()
    if c.exit_code == 1:
        assert text.startswith("Error: "), output
        lines = text.splitlines()
        assert "" not in lines and not any(line.startswith("Error:") for line in lines[1:]), f"not one paragraph: {output}"
    for fragment in c.says:
        assert fragment in output, f"{fragment!r} not in {output!r}"
    assert_unchanged(at_work, before)


def assert_unchanged(root: Path, before: dict[str, bytes | None]) -> None:
    after = snapshot(root)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p, b"<absent>") != after.get(p, b"<absent>"))
    assert not changed, f"the command changed these paths in the working folder: {changed}"


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 170
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.args[0] for c in CASES} >= {"sweep", "run", "status", "trials", "export", "db", "report", "ls"}


# ---- the checks behind the cases ------------------------------------------------------------------
def test_read_only_commands_leave_the_database_untouched(at_work: Path, tmp_path: Path) -> None:
    before = snapshot(at_work)
    for args in (("status", "--db", DB), ("trials", "--db", DB, "--where", "task=bit_xor", "--status", "queued"),
                 ("db", "check", "--db", DB), ("export", "--db", DB, "--out", str(tmp_path / "t.csv")),
                 ("report", "--db", DB, "--table", "2", "--format", "csv", "--out", str(tmp_path / "t.csv"))):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
    assert_unchanged(at_work, before)


def test_trials_filters_work_when_valid(at_work: Path) -> None:
    result = invoke("trials", "--db", DB, "--where", "task=bit_xor", "--where", "seed=0", "--status", "queued")
    assert result.exit_code == 0, result.output
    assert "bit_xor" in result.output and "queued" in result.output
    assert invoke("trials", "--db", DB, "--where", "task=listops").output == ""  # a valid filter matching nothing


def test_a_cluster_that_cannot_run_the_trials_leaves_the_database_untouched(at_work: Path, monkeypatch) -> None:
    """With --address, whether a trial fits is known only once Ray is joined: the sweep joins before it
    registers anything, so a refusal there writes nothing."""
    import fptlab.sweep.run as run_module

    def refuse(opts: SweepOptions):
        check_resources(opts, [{"CPU": 4.0}, {"CPU": 8.0, "GPU": 1.0}])

    monkeypatch.setattr(run_module, "init_ray", refuse)
    before = snapshot(at_work)
    result = invoke(*SWEEP, "--gpus-per-trial", "2", "--address", "10.0.0.5:6379")
    assert result.exit_code == 1 and result.output.startswith("Error: "), result.output
    assert "2 GPU each" in result.output and "largest node has 1" in result.output
    assert_unchanged(at_work, before)


def test_a_sweep_into_a_missing_database_that_fails_leaves_it_missing(at_work: Path, monkeypatch) -> None:
    import fptlab.sweep.run as run_module

    def refuse(opts: SweepOptions):
        raise FptlabError("no cluster today")

    monkeypatch.setattr(run_module, "init_ray", refuse)
    result = invoke("sweep", "spec.toml", "--db", "sqlite:///fresh.db", "--no-progress")
    assert result.exit_code == 1 and "no cluster today" in result.output
    assert not (at_work / "fresh.db").exists()


@pytest.mark.parametrize(
    "cpus, gpus, nodes, says",
    [
        (8, 0, [{"CPU": 4.0}, {"CPU": 2.0}], "asks for 8 CPUs (--cpus-per-trial) but the Ray cluster's largest node has 4"),
        (1, 1, [{"CPU": 16.0}], "1 GPU each but the Ray cluster's largest node has 0"),
        (0.5, 0.5, [{"CPU": 16.0, "GPU": 0.25}], "0.5 GPU each but the Ray cluster's largest node has 0.25"),
        (8, 1, [{"CPU": 16.0}, {"CPU": 4.0, "GPU": 2.0}], "No node of the Ray cluster has both 8 CPUs and 1 GPUs"),
    ],
)
def test_a_trial_must_fit_one_node(cpus, gpus, nodes, says) -> None:
    with pytest.raises(FptlabError) as info:
        check_resources(SweepOptions(cpus_per_trial=cpus, gpus_per_trial=gpus), nodes)
    assert says in str(info.value)


def test_a_trial_that_fits_passes() -> None:
    check_resources(SweepOptions(cpus_per_trial=2, gpus_per_trial=0.5), [{"CPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}])


def test_the_lease_floor_is_the_store_heartbeat() -> None:
    """--lease must outlast the longest gap between two renewals of a running trial's lease."""
    default = inspect.signature(StoreSink.__init__).parameters["heartbeat_every"].default
    assert HEARTBEAT_SECONDS >= default
    SweepOptions(lease_seconds=HEARTBEAT_SECONDS + 1).check()


@pytest.mark.parametrize("seed, ok", [(0, True), (2**31 - 1, True), (2**31, False), (3_000_000_000, False)])
def test_seed_must_fit_every_backend(seed: int, ok: bool) -> None:
    raw = {"task": "bit_xor", "seed": seed}
    if ok:
        assert config_from_dict(raw).seed == seed
        return
    with pytest.raises(FptlabError, match=rf"'seed' = {seed} is out of range: it must be an integer from 0 to 2,147,483,647"):
        config_from_dict(raw)
