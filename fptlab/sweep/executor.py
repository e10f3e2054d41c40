"""Run a sweep's cells as Ray Tune trials, with the results store as the single source of truth.

Resume = re-expand the spec, skip what the store says is finished, claim the rest one at a time.
Claiming happens in the driver, in the search algorithm's `suggest()`, just before Tune starts a
trial, so several drivers on one PostgreSQL database share a spec without running a cell twice. The
driver is also the only writer: workers report records through Tune and `StoreCallback` writes them
and refreshes the leases of running trials; a driver that dies stops refreshing, and the next sweep
reclaims its cells once their lease expires (at once if the dead driver ran on this host).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fptlab.errors import FptlabError

FINISHED_STATUSES = ("completed", "diverged")


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


def owner_is_dead_here(owner: str | None) -> bool:
    """True when `owner` (fptlab.store.new_owner_id: host:pid:nonce) is a driver on this host whose
    process no longer exists."""
    if not owner or owner.count(":") < 2:
        return False
    host, pid, _ = owner.rsplit(":", 2)
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def init_ray(opts: SweepOptions) -> Any:
    # Tune's newer console output ignores verbose=0 for its banners; the legacy reporter honours it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    env = {k: v for k, v in os.environ.items() if k in ("FPTLAB_OFFLINE", "HF_HUB_OFFLINE", "FPTLAB_DATA", "HF_HOME")}
    # Keep trials in the driver's working directory, so relative paths in configs mean the same there.
    env["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=False, logging_level="ERROR", runtime_env={"env_vars": env},
    )
    if opts.address:
        kwargs["address"] = opts.address
    else:
        # "local" always starts a private embedded Ray; without it ray.init() silently joins any
        # cluster a `ray start` left running on this host.
        kwargs["address"] = "local"
        kwargs["num_cpus"] = opts.num_cpus
    try:
        ray.init(**{k: v for k, v in kwargs.items() if v is not None})
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {opts.address}" if opts.address else "an embedded local Ray"
        raise FptlabError(f"Could not start or join {where}: {e}. Check `ray status` on the head node, or drop --address.") from None
    check_gpus(opts, ray.cluster_resources())
    return ray


def check_gpus(opts: SweepOptions, resources: dict[str, float]) -> None:
    gpus = float(resources.get("GPU", 0))
    if opts.gpus_per_trial > 0 and gpus < opts.gpus_per_trial:
        raise FptlabError(
            f"Trials ask for {opts.gpus_per_trial} GPU each but the Ray cluster has {gpus:g}. "
            "Drop --gpus-per-trial, or join a cluster with GPUs (--address)."
        )
    if gpus > 0 and opts.gpus_per_trial == 0:
        import warnings

        warnings.warn(
            f"The Ray cluster has {gpus:g} GPU(s) but trials request none, so training runs on CPU. "
            "Pass --gpus-per-trial 1 (or a fraction such as 0.25 to share a GPU).",
            stacklevel=2,
        )
