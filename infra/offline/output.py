"""How the offline tool writes: to a stdout that may be a pipe its reader closed (`| head`),
with colour only for a terminal that wants it."""

from __future__ import annotations

import os
import sys
from typing import TextIO


def emit(text: str, stream: TextIO | None = None) -> None:
    """Write `text` and a newline; a reader that went away ends the output quietly."""
    stream = stream or sys.stdout
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        silence(stream)


def silence(stream: TextIO) -> None:
    """Point `stream` at /dev/null after its reader went away, so the interpreter's last flush
    at exit does not fail again (the advice of Python's signal module docs on SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError):
        pass


def wants_colour(stream: TextIO | None = None) -> bool:
    """Colour for a terminal only, and never with NO_COLOR set (https://no-color.org)."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
