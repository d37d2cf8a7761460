"""The cluster's time limit: runtime requests that never exceed it, and training in rounds that fit it.

A SLURM partition caps a job's wall time (`MaxTime`, ``sinfo -o "%P %l"``). `cluster.max_job_minutes`
names that cap once: every runtime request, retries included, stays at or below it (`request`), and a
fold of nnU-Net whose training takes longer is split into `rounds` chained jobs, round r training up
to `epoch_target`. Before the first submission, `over_limit` compares the jobs' requests with the
partitions' limits as SLURM reports them (`partition_limits`) and names the setting to change.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from samcrowd.errors import SamcrowdError

#: The config key of the cap.
LIMIT_KEY = "cluster.max_job_minutes"


def rounds(minutes: int, max_job_minutes: int) -> int:
    """How many chained jobs a training of `minutes` needs when no job may run longer than
    `max_job_minutes` (0: no limit, one job)."""
    return 1 if max_job_minutes <= 0 else max(1, math.ceil(minutes / max_job_minutes))


def round_minutes(minutes: int, max_job_minutes: int) -> int:
    """The runtime request of one round: the training's minutes shared evenly among its rounds."""
    return math.ceil(minutes / rounds(minutes, max_job_minutes))


def request(base: int, attempt: int, max_job_minutes: int) -> int:
    """A runtime request (minutes) of attempt n: n x base (a job killed at its limit gets more time),
    never above `max_job_minutes` (0: no cap)."""
    asked = int(base) * int(attempt)
    return min(asked, max_job_minutes) if max_job_minutes > 0 else asked


def epoch_target(round_number: int, n_rounds: int, epochs: int) -> int:
    """The epoch count at which round `round_number` (1..n_rounds) of a training of `epochs` stops:
    the epochs shared evenly, the last round ending at `epochs`."""
    if not 1 <= round_number <= n_rounds:
        raise ValueError(f"round {round_number} is not one of 1..{n_rounds}")
    return -(-epochs * round_number // n_rounds)


_SIGNAL = re.compile(r"--signal[= ](?:[RB]+:)?\w+@(\d+)")


def warning_seconds(slurm_extra: str | None) -> int | None:
    """The seconds before the time limit at which sbatch's --signal (in a job's slurm_extra) warns it."""
    m = _SIGNAL.search(slurm_extra or "")
    return int(m.group(1)) if m else None


_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+)(?::(\d+))?$")


def slurm_minutes(text: str) -> int | None:
    """SLURM's time format ("minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
    "days-hours:minutes", "days-hours:minutes:seconds") in whole minutes; None for no limit."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "none", ""):
        return None
    m = _SLURM_TIME.match(text)
    if not m:
        raise SamcrowdError(f"not a SLURM time limit: {text!r}")
    days, first, second, third = m.groups()
    if days is not None:  # days-hours[:minutes[:seconds]]
        if first is None:  # days-hours
            hours, minutes, seconds = int(second), 0, 0
        else:
            hours, minutes, seconds = int(first), int(second), int(third or 0)
        total = int(days) * 1440 + hours * 60 + minutes + seconds / 60
    elif first is None:  # minutes
        total = int(second)
    elif third is None:  # minutes:seconds
        total = int(first) + int(second) / 60
    else:  # hours:minutes:seconds
        total = int(first) * 60 + int(second) + int(third) / 60
    return math.floor(total)


@dataclass(frozen=True)
class Partitions:
    """SLURM's partitions: each one's limit in minutes (None: no limit) and the default one."""

    limits: dict[str, int | None]
    default: str | None
    shown: dict[str, str]  # each limit as SLURM prints it


def parse_sinfo(text: str) -> Partitions:
    """The output of ``sinfo -h -o "%P %l"`` (a default partition's name ends in *)."""
    limits, shown, default = {}, {}, None
    for line in text.splitlines():
        if not line.strip():
            continue
        name, limit = line.split()[:2]
        if name.endswith("*"):
            name = name[:-1]
            default = name
        limits[name] = slurm_minutes(limit)
        shown[name] = limit
    return Partitions(limits, default, shown)


def partition_limits() -> Partitions | None:
    """The partitions of the SLURM this machine submits to, or None where there is none (no sinfo,
    or no controller answering)."""
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return None
    try:
        run = subprocess.run([sinfo, "-h", "-o", "%P %l"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if run.returncode != 0 or not run.stdout.strip():
        return None
    return parse_sinfo(run.stdout)


@dataclass(frozen=True)
class Request:
    """One job's runtime request, where it goes, and the setting that decides it."""

    rule: str
    minutes: int
    partition: str | None  # None: the default partition
    key: str  # the config key (or profile setting) to change
    warning_s: int | None = None  # seconds before the end at which SLURM signals the job (--signal=...@s)


def over_limit(requests: Iterable[Request], partitions: Partitions, max_job_minutes: int) -> str | None:
    """One line naming the first request above its partition's MaxTime and the key to change (None
    when every request fits). A cap set above a partition's limit is named before the requests."""
    requests = list(requests)
    for req in requests:
        partition = req.partition or partitions.default
        if partition not in partitions.limits:
            continue  # SLURM refuses an unknown partition itself, naming it
        limit = partitions.limits[partition]
        if limit is None:
            continue
        if max_job_minutes > limit:
            return (
                f"config: key '{LIMIT_KEY}': {max_job_minutes} min is more than partition '{partition}' allows "
                f"(MaxTime {partitions.shown[partition]} = {limit} min, rule {req.rule}); set it to {limit} or less"
            )
    for req in requests:
        if req.warning_s is not None and req.warning_s * 2 > req.minutes * 60:
            return (
                f"set-resources {req.rule}:slurm_extra: SLURM's warning {req.warning_s} s before the end of a "
                f"{req.minutes}-min job would stop it in its first half; ask for fewer seconds, or more minutes "
                f"({req.key})"
            )
        partition = req.partition or partitions.default
        limit = partitions.limits.get(partition)
        if limit is not None and req.minutes > limit:
            return (
                f"{req.key}: rule {req.rule} asks {req.minutes} min, more than partition '{partition}' allows "
                f"(MaxTime {partitions.shown[partition]} = {limit} min); set '{LIMIT_KEY}: {limit}' to cap every "
                "request there (nnU-Net then trains in rounds)"
            )
    return None
