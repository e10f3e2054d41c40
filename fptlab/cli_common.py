"""What every fptlab command shares, and nothing of any command: domain errors become one message and
exit 1, text that came from a database or file is printed escaped, the options several commands take,
and opening the results database for a command that reads it. `fptlab.cli` registers the commands of
`cli_sweep` and `cli_report`; they import this module, never each other or `cli`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from fptlab.errors import FptlabError

SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override any config key: KEY=VALUE (repeatable), e.g. --set lr=3e-4 --set bit_xor.n_bits=8.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Dataset cache/lookup folder (default: $FPTLAB_DATA or ~/.cache/fptlab/data).")]
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: $FPTLAB_DB, else sqlite:///fptlab.db).")]


@contextmanager
def user_errors() -> Iterator[None]:
    """Domain errors become one clean paragraph on stderr and exit code 1 (no traceback)."""
    try:
        yield
    except FptlabError as e:
        from fptlab.escape import for_terminal, shorten_words

        # It may quote what a database or file holds, or a value as long as the user gave it.
        typer.echo(for_terminal(shorten_words(f"Error: {e}"), keep_newlines=True), err=True)
        raise typer.Exit(1) from None


def say(text: str, err: bool = True) -> None:
    """One line or paragraph to the terminal, with what came from the database (names, hosts, errors)
    shown with its control characters escaped."""
    from fptlab.escape import for_terminal

    typer.echo(for_terminal(text, keep_newlines=True), err=err)


def existing_store(db: str | None) -> Any:
    """The database at `db` ($FPTLAB_DB, ./fptlab.db) if there is one, checked to be at head; else
    None. Creates nothing. A `--db` that cannot name a database (in memory, a folder, a FIFO) is an error."""
    from fptlab.cli_checks import check_db
    from fptlab.store import Store

    store = Store(db)
    if not check_db(store.url, "read-optional"):
        return None
    return Store.open_existing(store.url)


def required_store(db: str | None) -> Any:
    """The existing database at `db` for a command that needs one (status, trials, export), at head."""
    from fptlab.cli_checks import check_db
    from fptlab.store import Store

    store = Store(db)
    check_db(store.url, "read")
    store.ensure_schema(create_if_empty=False)
    return store
