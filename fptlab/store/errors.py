"""The store's one error type (kept apart so every store module can raise it without import cycles)."""

from __future__ import annotations

from fptlab.errors import FptlabError


class StoreError(FptlabError):
    """The results database is unreachable, has the wrong schema, or refused an operation. The message
    names the database with its password masked and says what to do."""


class DatabaseFileGone(StoreError):
    """The SQLite file this process opened was deleted or replaced under it: whatever is written through
    the connections still open would go into a file nobody can read again, so nothing more is."""
