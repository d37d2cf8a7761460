"""Cluster submissions of a plan: what `snakemake --profile profiles/slurm -n` would hand to sbatch.

A dry run prints each job it would submit: a group job as one ``Group job <group>`` header over its
member jobs, a single job as ``rule <name>:``. It does not say which jobs are local (they run where
snakemake runs and are never submitted), so their rules have one home here, `LOCAL_RULES`, which
rules/common.smk declares as the workflow's localrules. Counting the rest gives the submissions
for sizing a site's groups (docs/hpc.md).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable

#: Aggregations that take seconds: run where snakemake runs, not as cluster jobs.
LOCAL_RULES = (
    "all",
    "evaluate",
    "stats",
    "provenance",
    "figure_test_dice",
    "figure_annotation_dice",
    "figure_annotators",
    "figure_overlay",
)

#: A group job's header (its member jobs follow, indented).
GROUP = re.compile(r"^\[[^\]]*\] Group job (\S+) ")
#: A single job that is submitted on its own (not indented: a group member is).
SINGLE = re.compile(r"^rule (\w+):$")


def count(lines: Iterable[str], local_rules: Collection[str] = LOCAL_RULES) -> Counter[str]:
    """Submissions by rule or group name in a dry run's output, jobs of `local_rules` left out."""
    found: Counter[str] = Counter()
    for line in lines:
        line = line.rstrip("\n")
        if m := GROUP.match(line):
            found[m.group(1)] += 1
        elif (m := SINGLE.match(line)) and m.group(1) not in local_rules:
            found[m.group(1)] += 1
    return found
