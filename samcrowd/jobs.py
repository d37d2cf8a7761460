"""Running a Snakemake job: glue between `script:` entry points and the library (logging, errors).

(Named `jobs`, not `workflow`, so it cannot be confused with Snakemake's `workflow` object.)

A script calls `run(snakemake, main)`. It first removes temporaries that an interrupted
earlier attempt left beside the job's outputs. Log records go to the rule's log file (warnings
and errors also to stderr); a SamcrowdError (bad input the user can fix) becomes one line naming the file and the
problem, and the job fails without a traceback. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import samcrowd
from samcrowd.errors import SamcrowdError
from samcrowd.io import remove_stale_temporaries

T = TypeVar("T")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def run(smk: Any, main: Callable[[], object]) -> None:
    """Run `main` for a Snakemake job with logging to the job's log; exit 1 on SamcrowdError."""
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)  # the console shows Snakemake's progress; details go to the log
    handlers: list[logging.Handler] = [console]
    if smk.log:
        handlers.append(logging.FileHandler(smk.log[0], mode="w", encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)
    log = logging.getLogger("samcrowd")
    log.info("samcrowd %s, rule %s, wildcards %s", samcrowd.__version__, smk.rule, dict(smk.wildcards.items()))
    for output in smk.output:
        for stale in remove_stale_temporaries(output):
            log.info("removed %s, left by an interrupted earlier attempt", stale)
    try:
        main()
    except SamcrowdError as e:
        log.error("%s", e)
        sys.exit(1)


class _LogWriter:
    """A file-like object that sends tqdm's progress lines to a logger."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        if line:
            self.logger.info("%s", line)

    def flush(self) -> None:
        pass


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", every_s: float = 15.0) -> Iterator[T]:
    """tqdm progress (count, rate, time left) written to the log every `every_s` seconds and at the end."""
    from tqdm import tqdm

    return iter(
        tqdm(
            iterable,
            total=total,
            desc=desc,
            file=_LogWriter(logging.getLogger("samcrowd.progress")),
            mininterval=every_s,
            ascii=True,
            dynamic_ncols=False,
            ncols=100,
        )
    )
