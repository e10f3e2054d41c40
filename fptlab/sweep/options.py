"""A sweep's options (`fptlab sweep`'s flags) and whether its trials fit where they will run: every
number a user can get wrong is checked here before the database is written or Ray starts."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fptlab.errors import FptlabError

# A running trial's lease is renewed at least this often: `fptlab.store.StoreSink`'s heartbeat_every
# (the driver's own beat, every lease/4, comes more often). A lease must be longer, or a live trial
# is handed to another driver between two beats; SQLite's busy wait (30 s) is the same length.
HEARTBEAT_SECONDS = 30.0
MAX_RETRIES = 2**31 - 2  # attempts = retries + 1 lives in a 32-bit INTEGER column
MAX_PACK = 256  # members of one pack (one trial's worth of memory holds them all)


@dataclass(frozen=True)
class SweepOptions:
    address: str | None = None  # None: embedded local Ray
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    retries: int = 1  # failed trials are retried up to this many more times (in Tune, and by later sweeps)
    lease_seconds: float = 120.0
    storage: Path = Path("fptlab-runs")  # trial folders (checkpoints, artifacts) and Tune's files; shared on clusters
    data_dir: Path | None = None
    num_cpus: int | None = None  # embedded Ray only
    pack: int = 1  # the largest pack: cells sharing one frozen body train as one trial (`fptlab.packing`)

    def check(self) -> None:
        """Every number a user can get wrong, checked before the database is written or Ray starts.
        Errors name the flag, the value, what is expected and the fix. (Whether a trial fits the
        cluster: for embedded Ray `check_fits_here`; for --address `init_ray`, right after joining.
        Paths: `fptlab.cli_checks`.)"""
        _number("--cpus-per-trial", self.cpus_per_trial, "> 0 (a fraction such as 0.5 shares a CPU)", lambda v: v > 0)
        _number("--gpus-per-trial", self.gpus_per_trial, ">= 0 (0: CPU only; 0.5: two trials per GPU)", lambda v: v >= 0)
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise FptlabError(
                f"--max-concurrent must be at least 1, got {self.max_concurrent}. Drop it to run as many trials as resources allow."
            )
        if not 0 <= self.retries <= MAX_RETRIES:
            raise FptlabError(
                f"--retries must be an integer from 0 to {MAX_RETRIES:,} (retries after a failure), got {self.retries}. "
                "Use 0 for no retry."
            )
        check_lease(self.lease_seconds)
        if not 1 <= self.pack <= MAX_PACK:
            raise FptlabError(f"--pack must be an integer from 1 (no packing) to {MAX_PACK}, got {self.pack}.")
        if self.num_cpus is not None and self.address:
            raise FptlabError(
                f"--num-cpus sizes embedded Ray only; the cluster at --address {self.address} has its own CPUs. Drop --num-cpus."
            )
        if self.num_cpus is not None and self.num_cpus < 1:
            raise FptlabError(
                f"--num-cpus must be at least 1, got {self.num_cpus}: embedded Ray with no CPU runs no trial. Drop it to use every CPU."
            )
        if self.address is not None and not self.address.strip():
            raise FptlabError(
                "--address is empty. Give the head node as HOST:PORT (e.g. 10.0.0.5:6379), auto, or drop it for embedded Ray."
            )


def check_lease(seconds: float) -> None:
    """--lease (of `fptlab sweep` and `fptlab status`): longer than the heartbeat interval."""
    _number(
        "--lease", seconds, f"of seconds longer than the heartbeat interval of {HEARTBEAT_SECONDS:g} s (a live trial's lease "
        "is renewed that often)", lambda v: v > HEARTBEAT_SECONDS, fix="Use the default, --lease 120.",
    )


def _number(flag: str, value: float, expected: str, ok: Any, fix: str = "") -> None:
    if not (math.isfinite(value) and ok(value)):
        raise FptlabError(f"{flag} must be a finite number {expected}, got {value:g}.{' ' + fix if fix else ''}")


def local_cpus() -> int:
    """The CPUs this process may use (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_fits_here(opts: SweepOptions) -> None:
    """For embedded Ray (no --address): a trial must fit on this machine, or Tune waits forever.
    torch is imported (to count GPUs) only when trials ask for a GPU."""
    if opts.address:
        return
    cpus = opts.num_cpus if opts.num_cpus is not None else local_cpus()
    where = f"--num-cpus {opts.num_cpus}" if opts.num_cpus is not None else "this machine"
    if opts.cpus_per_trial > cpus:
        raise FptlabError(
            f"Each trial asks for {opts.cpus_per_trial:g} CPUs (--cpus-per-trial) but embedded Ray has {cpus} ({where}), so no "
            f"trial could ever start. Use --cpus-per-trial {cpus} or less, or join a larger cluster with --address."
        )
    if opts.gpus_per_trial > 0:
        import torch

        gpus = torch.cuda.device_count()
        if opts.gpus_per_trial > gpus:
            raise FptlabError(
                f"Trials ask for {opts.gpus_per_trial:g} GPU each (--gpus-per-trial) but this machine has {gpus}. "
                "Drop --gpus-per-trial, or join a cluster with GPUs (--address)."
            )


def check_resources(opts: SweepOptions, nodes: list[dict[str, float]]) -> None:
    """A trial runs on one node: some node must have both the CPUs and the GPUs it asks for, or Tune
    waits forever. Also warns when the cluster has GPUs that trials do not use."""
    cpus = max((float(n.get("CPU", 0)) for n in nodes), default=0.0)
    gpus = max((float(n.get("GPU", 0)) for n in nodes), default=0.0)
    if opts.gpus_per_trial > 0 and gpus < opts.gpus_per_trial:
        raise FptlabError(
            f"Trials ask for {opts.gpus_per_trial:g} GPU each but the Ray cluster's largest node has {gpus:g}. "
            "Drop --gpus-per-trial, or join a cluster with GPUs (--address)."
        )
    if cpus < opts.cpus_per_trial:
        raise FptlabError(
            f"Each trial asks for {opts.cpus_per_trial:g} CPUs (--cpus-per-trial) but the Ray cluster's largest node has "
            f"{cpus:g}, so no trial could ever start. Use --cpus-per-trial {cpus:g} or less."
        )
    if not any(float(n.get("CPU", 0)) >= opts.cpus_per_trial and float(n.get("GPU", 0)) >= opts.gpus_per_trial for n in nodes):
        raise FptlabError(
            f"No node of the Ray cluster has both {opts.cpus_per_trial:g} CPUs and {opts.gpus_per_trial:g} GPUs, which each "
            "trial asks for. Lower --cpus-per-trial to what the GPU nodes have."
        )
    total_gpus = sum(float(n.get("GPU", 0)) for n in nodes)
    if total_gpus > 0 and opts.gpus_per_trial == 0:
        warnings.warn(
            f"The Ray cluster has {total_gpus:g} GPU(s) but trials request none, so training runs on CPU. "
            "Pass --gpus-per-trial 1 (or a fraction such as 0.25 to share a GPU).",
            stacklevel=2,
        )
