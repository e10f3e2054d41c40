"""Domain errors. Anything a user can cause raises an FptlabError; the CLI prints it and exits 1."""

from __future__ import annotations


class FptlabError(Exception):
    """A user-facing error: the message names the bad value, what was expected and the fix."""


class ConfigError(FptlabError):
    """A run configuration or override is malformed (unknown key, wrong type, bad value)."""


class UnknownNameError(FptlabError):
    """A name (task, backbone, group, ...) is not registered."""


class DataNotFoundError(FptlabError):
    """A dataset or weight file the configuration names is not available here."""


class IncompatibleError(FptlabError):
    """Two valid choices that cannot be combined (e.g. a sequence longer than a backbone's positions)."""


class BadFileError(FptlabError):
    """A file a run reads (weights, a saved body, a checkpoint) is malformed, hostile or of another
    model than expected; the message names the file and what is wrong with it."""


class FptlabWarning(UserWarning):
    """Something a user should know that does not stop the command (a checkpoint set aside, a trial
    another driver took over); the CLI prints it as one `Warning: ...` line."""
