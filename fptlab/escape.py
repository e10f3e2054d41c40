"""Text from a results database, a results file or a folder is untrusted: a database is shared between
people and machines, and anything in it may have been written by someone else. Every writer passes
such text through the one helper of its output format here, so no value can add structure to the
output (a Markdown heading, a table row, a spreadsheet formula, a terminal escape sequence):

    for_terminal   control characters and escape sequences shown visibly (\\x1b, \\n, \\u202e)
    for_markdown   HTML entities, Markdown punctuation backslash-escaped, `|` escaped, newlines folded
    for_csv        a text cell that a spreadsheet would run as a formula is prefixed with ' (OWASP)
    for_latex      LaTeX specials escaped, newlines folded
    for_html       HTML-escaped (quotes included)
    quoted         a value quoted for an error message, shortened when long
"""

from __future__ import annotations

import html
import re
from typing import Any

# C0 controls (tab and newline included: a value is one line of output), DEL, C1 controls, and the
# Unicode marks that reorder or hide text on screen (bidirectional overrides and isolates, zero-width
# characters, the line and paragraph separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(ch: str) -> str:
    code = ord(ch)
    return _NAMED.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def for_terminal(text: Any, *, keep_newlines: bool = False) -> str:
    """`text` with every control character and invisible reordering mark written out as an escape
    (ESC -> "\\x1b"); with `keep_newlines`, line breaks stay (a message of several lines)."""
    text = str(text)
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(lambda m: _visible(m.group()), line) for line in text.split("\n"))
    return _UNSAFE.sub(lambda m: _visible(m.group()), text)


_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]#~|])")
_MD_BLOCK_START = re.compile(r"^(\s*\d{0,9})([-+.)])(?=\s|$)")  # "- x", "+ x", "1. x", "1) x" would start a list
_NEWLINES = re.compile(r"\r\n|[\r\n\u2028\u2029]")


def fold(text: Any) -> str:
    """One line: every line break becomes a space."""
    return _NEWLINES.sub(" ", str(text))


def for_markdown(text: Any) -> str:
    """`text` as literal Markdown: HTML cannot open (<, >, & as entities), punctuation that makes
    links, emphasis, code or table cells is backslash-escaped, line breaks are folded into spaces
    (no new heading or table row), and control characters are shown escaped."""
    text = for_terminal(fold(text))
    text = _MD_PUNCTUATION.sub(r"\\\1", html.escape(text, quote=False))
    return _MD_BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def for_csv(value: Any) -> Any:
    """A cell for a CSV file: text that a spreadsheet would evaluate (it starts with = + - @, a tab
    or a carriage return) gets a leading ' as OWASP advises; numbers and other values stay as they
    are, so a negative number is still a number. The csv writer does the quoting."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
          "~": r"\textasciitilde{}", "^": r"\^{}", "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
          "±": r"$\pm$", "†": r"$^\dagger$", "×": r"$\times$", "—": "--", "−": "-"}


def for_latex(text: Any) -> str:
    """`text` as literal LaTeX: specials escaped, line breaks folded (a blank line would end the
    table row's paragraph), control characters shown escaped."""
    return "".join(_LATEX.get(ch, ch) for ch in for_terminal(fold(text)))


def for_html(text: Any) -> str:
    return html.escape(str(text), quote=True)


QUOTE_LIMIT = 80


def quoted(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """`repr(value)` for an error message, cut to its first `limit` characters and its length when
    longer ("'aaaa…' (10,485,760 characters)"): a message quotes what was wrong, not all of it."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        size = f"{len(value):,} characters"
    elif isinstance(value, bytes):
        size = f"{len(value):,} bytes"
    elif isinstance(value, (list, tuple, dict)):
        size = f"{len(value):,} items"
    else:
        size = f"{len(text):,} characters"
    return f"{text[:limit]}… ({size})"


_LONG_WORD = re.compile(r"\S{" + str(QUOTE_LIMIT * 4) + ",}")


def shorten_words(text: str, limit: int = QUOTE_LIMIT) -> str:
    """Every run of over 4 × `limit` non-space characters in a message cut to its first `limit` and its
    length: the safety net for messages that quote a name or key path as given (a 10 MB --set key)."""
    return _LONG_WORD.sub(lambda m: f"{m.group()[:limit]}… ({len(m.group()):,} characters)", text)
