"""Ray for a sweep: embedded local Ray or an existing cluster (`--address`), each embedded session
recorded so the next sweep can end what a killed driver left, and Ray's output cut to one line a message.

The sweep's contract: resume = re-expand the spec, skip what the store says is finished, claim the rest
one at a time. Claiming happens in the driver, in the search algorithm's `suggest()`, just before Tune
starts a trial, so several drivers on one PostgreSQL database share a spec without running a cell
twice. The driver is also the only writer: workers report records through Tune and `StoreCallback`
writes them and refreshes the leases of running trials (`fptlab.sweep.tune_glue`).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from fptlab.errors import FptlabError, FptlabWarning
from fptlab.sweep.options import SweepOptions, check_resources


def init_ray(opts: SweepOptions) -> Any:
    """Start embedded Ray or join --address, then check that a trial fits on one of its nodes (Ray is
    shut down again if not): called before anything of the sweep is written to the database.

    First the Ray processes that earlier sweeps on this host left when their driver was killed are
    ended (`fptlab.sweep.cleanup`); an embedded Ray started here is recorded for the next sweep to
    find, should this driver be killed. Ray's and Tune's messages to the driver are cut to one line
    each (`quiet_ray_output`)."""
    # Tune's newer console output ignores verbose=0 for its banners; the legacy reporter honours it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if opts.address:
        check_reachable(opts.address)
    import ray

    from fptlab.sweep import cleanup

    for reaped in cleanup.reap_dead_sessions():
        warnings.warn(reaped.describe() + ".", FptlabWarning, stacklevel=2)
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
    if not opts.address:
        _record_embedded_session(cleanup)
    quiet_ray_output()
    try:
        check_resources(opts, [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", True)])
    except BaseException:
        ray.shutdown()
        raise
    return ray


def _record_embedded_session(cleanup: Any) -> None:
    """Record the embedded Ray session just started (see `fptlab.sweep.cleanup`); the record goes
    when this process exits (by then `ray.shutdown` has ended the session)."""
    import atexit

    import ray

    node = getattr(ray._private.worker, "_global_node", None)  # no public API names the session folder
    session_dir = node.get_session_dir_path() if node is not None and hasattr(node, "get_session_dir_path") else None
    if session_dir:
        record = cleanup.record_session(session_dir, root=Path(session_dir).parent)
        if record is not None:
            atexit.register(cleanup.forget_session, record)


# ---- what Ray and Tune print in the driver ------------------------------------------------------------
# With log_to_driver=False the driver still prints two things at length: every error the cluster
# pushes to drivers (a dead node's agents each push "Raylet is terminated ..." with the last 20 lines
# of its log, ~21 lines per agent and per node) and, for each failed trial, Tune's ERROR record with
# the full traceback (~20 lines, once per retry). Both are cut to one line here; what a trial failed
# of stays in the database (`fptlab trials --status failed`) and in Tune's error.txt under --storage.
MESSAGE_CHARS = 300
REPEAT_SECONDS = 60.0  # the same pushed message again within this long is not printed again
TUNE_CONTROLLER_LOGGER = "ray.tune.execution.tune_controller"
# Tune's other loggers that print tracebacks in the driver: its state files could not be written
# (e.g. a full disk under --storage), and the end of a run with failed trials.
TUNE_LOGGERS = (TUNE_CONTROLLER_LOGGER, "ray.tune.execution.experiment_state", "ray.tune.tune")


def quiet_ray_output() -> None:
    """Make Ray's pushed error messages and Tune's trial-failure records one line each (idempotent)."""
    _condense_pushed_errors()
    for name in TUNE_LOGGERS:
        tune_logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineExceptions) for f in tune_logger.filters):
            tune_logger.addFilter(OneLineExceptions())


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """The first line of `text`, its unfinished last clause ("... the Raylet logs:") dropped, cut to
    `limit` characters; notes how many lines were left out."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0]
    if first.endswith(":") and ". " in first:
        first = first[: first.rindex(". ") + 1]
    if len(first) > limit:
        first = first[: limit - 3].rstrip() + "..."
    return first + (f" [{len(lines) - 1} more lines in the Ray logs]" if len(lines) > 1 else "")


def exception_line(exc: BaseException) -> str:
    """One line for an exception. A RayTaskError's text is the remote traceback, whose last line
    names the exception the trainable raised."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if any(c.__name__ == "RayTaskError" for c in type(exc).__mro__) and lines:
        text = lines[-1]
    else:
        text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3].rstrip() + "..."


class OneLineExceptions(logging.Filter):
    """A log record with a traceback becomes its message and the exception's one-line summary."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            said = record.getMessage().rstrip().rstrip(":")  # e.g. "... failed with exception: "
            record.msg, record.args = f"{said}: {exception_line(exc)}", None
            record.exc_info, record.exc_text = None, None
        return True


def _condense_pushed_errors() -> None:
    """Ray's driver prints each error the cluster pushes (a dead raylet, a dead worker) through
    `ray._private.worker.print_to_stdstream`, a private function and the only hook there is: wrap
    it so that each message prints as one line, once a minute at most. Left alone if Ray moved it."""
    try:
        from ray._private import worker as ray_worker
    except ImportError:  # pragma: no cover - a Ray without the module
        return
    original = getattr(ray_worker, "print_to_stdstream", None)
    if not callable(original) or getattr(original, "_fptlab_condensed", False):
        return
    last_printed: dict[str, float] = {}

    def condensed(data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if not isinstance(data, dict) or data.get("pid") != "raylet":  # "raylet": errors pushed to drivers
            return original(data, *args, **kwargs)
        lines, now = [], time.monotonic()
        for message in data.get("lines") or ():
            line = one_line(message)
            if not line or now - last_printed.get(line, -math.inf) < REPEAT_SECONDS:
                continue
            last_printed[line] = now
            lines.append(line)
        return original({**data, "lines": lines}, *args, **kwargs) if lines else None

    condensed._fptlab_condensed = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = condensed


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address must accept a connection: ray.init waits minutes on
    one that does not. Other forms (auto) are left to Ray, which fails fast on them."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise FptlabError(
            f"Cannot reach the Ray cluster at --address {address}: {e.strerror or e}. Check the head node's address and "
            "port (`ray status` there), that `ray start --head` is running, or drop --address to use embedded Ray."
        ) from None


