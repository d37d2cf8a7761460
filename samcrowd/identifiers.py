"""Case and annotator names: one pattern for paths, Snakemake wildcards, file names and the schemas."""

from __future__ import annotations

import re

#: A case or annotator name: a letter or digit, then letters, digits, '_' or '-'; 64 characters at most.
IDENTIFIER = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_IDENTIFIER = re.compile(IDENTIFIER)


def is_identifier(name: str) -> bool:
    """True when `name` can name a case or an annotator (it becomes part of file names and wildcards)."""
    return _IDENTIFIER.fullmatch(name) is not None
