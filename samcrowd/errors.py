"""The one exception type for input a user can fix: printed as one line, never a traceback."""

from __future__ import annotations

from os import PathLike


class SamcrowdError(Exception):
    """A problem with the user's input, naming the file (and line) where it is."""

    def __init__(self, message: str, path: str | PathLike | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        if self.path is not None and line is not None:
            text = f"{self.path}:{line}: {message}"
        elif self.path is not None:
            text = f"{self.path}: {message}"
        else:
            text = message
        super().__init__(text)
