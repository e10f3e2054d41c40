"""What Ray and Tune print in a sweep's driver is cut to one line a message
(`fptlab.sweep.ray_setup.quiet_ray_output`): a dead node's "Raylet is terminated" with 20 lines of
its log, pushed once by each of the node's agents, and Tune's ERROR record with a full traceback for
each failed trial. The sweep through a dead node is in test_multinode.py."""

from __future__ import annotations

import logging

import pytest

from fptlab.sweep import ray_setup

RAYLET_DIED = (
    "Raylet is terminated. Termination is unexpected. Possible reasons include: (1) SIGKILL by the user or system OOM "
    "killer, (2) Invalid memory access from Raylet causing SIGSEGV or SIGBUS, (3) Other termination signals. Last 20 "
    "lines of the Raylet logs:\n" + "".join(f"    [state-dump] line {i}\n" for i in range(20))
)


def test_a_pushed_message_is_one_line_and_names_what_was_left_out():
    line = ray_setup.one_line(RAYLET_DIED)
    assert line.startswith("Raylet is terminated. Termination is unexpected.")
    assert line.endswith("(3) Other termination signals. [20 more lines in the Ray logs]")
    assert ray_setup.one_line("x" * 1000) == "x" * 297 + "..."
    assert ray_setup.one_line("  \n") == ""


def test_pushed_errors_print_once_as_one_line(capsys):
    ray_worker = pytest.importorskip("ray._private.worker")
    ray_setup.quiet_ray_output()
    ray_setup.quiet_ray_output()  # idempotent: wrapped once
    assert ray_worker.print_to_stdstream._fptlab_condensed
    for _agent in ("DashboardAgent", "RuntimeEnvAgent"):  # each agent of the dead node pushes the same message
        ray_worker.print_to_stdstream({"lines": [RAYLET_DIED], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1 and "Raylet is terminated" in out and "[state-dump]" not in out


def test_a_trial_failure_logs_one_line_naming_the_exception(caplog):
    from ray.exceptions import RayTaskError

    ray_setup.quiet_ray_output()
    logger = logging.getLogger(ray_setup.TUNE_CONTROLLER_LOGGER)
    try:
        raise ValueError("the loss is a string")
    except ValueError as cause:
        remote = RayTaskError("train", "Traceback (most recent call last):\n  File x\nValueError: the loss is a string", cause)
        task_error = remote.as_instanceof_cause()
    try:
        raise ConnectionError("node gone\nmore detail")
    except ConnectionError as lost:
        actor_error = lost
    with caplog.at_level(logging.ERROR, logger=ray_setup.TUNE_CONTROLLER_LOGGER):
        logger.error("Trial task failed for trial %s", "fpt_trainable_1", exc_info=task_error)
        logger.error("Trial task failed for trial %s", "fpt_trainable_2", exc_info=actor_error)
    first, second = caplog.records
    assert first.getMessage() == "Trial task failed for trial fpt_trainable_1: ValueError: the loss is a string"
    assert second.getMessage() == "Trial task failed for trial fpt_trainable_2: ConnectionError: node gone"
    assert first.exc_info is None and second.exc_info is None  # no traceback printed


def test_tunes_state_file_errors_log_one_line(caplog):
    """A full disk under --storage: Tune could not save its experiment state and logged the traceback."""
    ray_setup.quiet_ray_output()
    name = "ray.tune.execution.experiment_state"
    assert name in ray_setup.TUNE_LOGGERS
    logger = logging.getLogger(name)
    with caplog.at_level(logging.ERROR, logger=name):
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            logger.error("Saving experiment state to storage at '/runs/tune' failed with exception: ", exc_info=True)
    (record,) = caplog.records
    assert record.getMessage() == (
        "Saving experiment state to storage at '/runs/tune' failed with exception: OSError: [Errno 28] No space left on device"
    )
    assert record.exc_info is None
