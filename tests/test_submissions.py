"""What a cluster run submits: group jobs once, single jobs once, local rules never; counted from
the workflow's own dry run through profiles/slurm."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO, snakemake

from samcrowd import submissions

DRY_RUN = """\
Job stats:
job      count
[Sun Nov 29 11:09:08 2026] Group job export (jobs in lexicogr. order):
    [Sun Nov 29 11:09:08 2026]
    rule check_case:
        output: results/data/checked/a.json
    [Sun Nov 29 11:09:08 2026]
    rule export_slices:
        output: results/slices/a.manifest.json
[Sun Nov 29 11:09:08 2026]
rule masks:
    output: results/masks/ann01/batch0001
[Sun Nov 29 11:09:08 2026]
rule masks:
    output: results/masks/ann02/batch0001
[Sun Nov 29 11:09:08 2026]
rule stats:
    output: results/tables/table1.tsv
[Sun Nov 29 11:09:08 2026]
rule all:
    input: results/tables/table1.md
"""


def test_a_group_job_counts_once_its_members_not_at_all_and_local_rules_never():
    assert submissions.count(DRY_RUN.splitlines()) == {"export": 1, "masks": 2}
    assert submissions.count(DRY_RUN.splitlines(), local_rules=()) == {"export": 1, "masks": 2, "stats": 1, "all": 1}


def test_the_local_rules_are_the_workflows_and_are_quick_aggregations():
    assert "all" in submissions.LOCAL_RULES
    heavy = {"embed", "masks", "fuse", "quality", "nnunet_train", "nnunet_predict", "nnunet_evaluate", "check_case"}
    assert not heavy & set(submissions.LOCAL_RULES)


@pytest.mark.workflow
def test_the_demo_through_profiles_slurm_submits_batches_groups_and_gpu_jobs_one_by_one(tmp_path):
    run = snakemake(
        tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(REPO / "config.yaml")
    )
    assert run.returncode == 0, run.stderr[-3000:]
    count = subprocess.run(
        [sys.executable, "-m", "samcrowd.cli", "submissions"],
        input=run.stdout + run.stderr,
        capture_output=True,
        text=True,
    )
    assert count.returncode == 0, count.stderr
    table = dict(line.split("\t") for line in count.stdout.splitlines())
    assert table == {
        "phantom": "1",
        "export": "1",  # 14 check_case, 8 export_slices jobs and nnunet_test_images in one group job
        "simulate_crowd": "4",
        "segmenter": "1",
        "litemedsam_openvino": "1",
        "embed": "1",  # 8 cases in one batch
        "masks": "4",  # one per annotator and batch
        "quality": "1",
        "fusion": "1",  # 8 fuse and 8 evaluate_case jobs in one group job
        "nnunet_prepare": "3",  # gt, crowd, sparse
        "nnunet_train": "6",
        "nnunet_predict": "3",
        "nnunet_evaluate": "1",
        "total": "28",
    }
    fuse = re.findall(r"rule fuse:\n(?:        .*\n)*?        resources: (.*)", run.stdout + run.stderr)
    assert len(fuse) == 8 and not any("gpu" in r for r in fuse)  # filling decodes on the group job's CPUs
