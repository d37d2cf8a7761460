"""The study on a real single-node SLURM through profiles/slurm, and what a rerun plans after it.

One study (SAM segmenter, annotators read from a folder, nnU-Net on gt and crowd labels) runs
through the profile: batch jobs for the SAM stage, group jobs for the per-case work, aggregations
on the submitting node. SLURM's own job records must show few submissions, all completed, and a
GPU requested and granted for exactly the GPU rules, one each. The finished study is then the
starting point of the incremental-rerun specifications: a new annotator folder, or a new plot
setting, plans only what depends on it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, snakemake, write_config
from slurm_cluster import GROUPS, rule_of

from samcrowd import submissions

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

GPU_RULES = {"embed", "masks", "nnunet_train", "nnunet_predict"}
#: sbatch jobs of this study before batches, groups and localrules (one per job): at most a third now
SUBMISSIONS_BEFORE = 52
FIRST_ANNOTATORS = ["ann01", "ann02"]
NEW_ANNOTATOR = "ann03"
N_TRAIN, N_TEST = 3, 2


def study_config(checkpoint: Path, annotations: str) -> str:
    """The scaled-down default: 3 train + 2 test phantoms, a tiny SAM, tiny nnU-Net, GPU where asked."""
    return f"""
phantom: {{n_train: {N_TRAIN}, n_test: {N_TEST}, shape: [48, 48, 16], orientations: [RAS, LPS, LAS]}}
annotations: {annotations}
segmenter: {{kind: sam, model_type: test_tiny, checkpoint: {checkpoint}, device: auto}}
nnunet:
  sources: [gt, crowd]
  configuration: 3d_fullres
  trainer: nnUNetTrainer_samcrowdTiny
  folds: 2
  device: auto
  threads: 1
  deterministic: true
  train_resources: {{mem_mb: 4000, runtime: 30}}
"""


@pytest.fixture(scope="module")
def annotator_folders(tmp_path_factory, tiny_checkpoint):
    """Three simulated annotators' OpenLabeling folders for the study's phantom (written locally)."""
    scratch = tmp_path_factory.mktemp("crowd")
    cfg = write_config(scratch / "sim.yaml", study_config(tiny_checkpoint, "{source: simulate}"))
    targets = [f"results/annotations/{a}" for a in [*FIRST_ANNOTATORS, NEW_ANNOTATOR]]
    run = snakemake(scratch, *targets, "--cores", "2", "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    return scratch / "results" / "annotations"


@pytest.fixture(scope="module")
def slurm_study(slurm, annotator_folders, tiny_checkpoint, tmp_path_factory):
    """The whole study run with `--profile profiles/slurm`; (folder, config, snakemake's log)."""
    work = tmp_path_factory.mktemp("slurm_study")
    for name in FIRST_ANNOTATORS:
        shutil.copytree(annotator_folders / name, work / "annotations" / name)
    cfg = write_config(work / "study.yaml", study_config(tiny_checkpoint, "{source: folder, folder: annotations}"))
    start = time.perf_counter()
    run = snakemake(
        work,
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--configfile",
        str(cfg),
        "--slurm-init-seconds-before-status-checks",
        "2",  # a test cluster answers at once; the plugin waits 10 s longer after each round without news
        "--cores",
        str(os.cpu_count()),  # the group jobs' width: the test node has this machine's CPUs
        "--verbose",
        timeout=1500,
    )
    log = run.stdout + run.stderr + f"\nwall time through SLURM: {time.perf_counter() - start:.0f} s\n"
    (work / "snakemake.log").write_text(log)
    assert run.returncode == 0, log[-5000:]
    return work, cfg, log


def test_the_study_runs_through_slurm_and_only_gpu_rules_get_a_gpu(slurm, slurm_study, capsys):
    work, _, log = slurm_study
    jobs = [j for j in slurm.jobs() if j.get("WorkDir") == str(work)]
    assert jobs and all(j["JobState"] == "COMPLETED" for j in jobs)
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(rule_of(job), []).append(job)
    assert GPU_RULES | set(GROUPS) <= set(by_rule)
    assert len(jobs) <= SUBMISSIONS_BEFORE // 3
    assert len(by_rule["embed"]) == 1 and len(by_rule["masks"]) == len(FIRST_ANNOTATORS)  # one batch of 3 cases
    assert len(by_rule["nnunet_train"]) == 2 * 2 and len(by_rule["nnunet_predict"]) == 2
    assert len(by_rule["export"]) == len(by_rule["fusion"]) == 1  # 5 and 3 cases, one group job each
    assert "nnunet_test_images" not in by_rule  # in the export group
    assert not {"evaluate", "stats", "provenance", "figure_overlay"} & set(by_rule)  # localrules
    for rule, records in by_rule.items():
        for job in records:
            asked = job.get("TresPerJob", "") == "gres:gpu:1"
            granted = job.get("JOB_GRES") == "gpu:1"
            assert asked == granted == (rule in GPU_RULES), (rule, job.get("TresPerJob"), job.get("JOB_GRES"))
    table1 = (work / "results/tables/table1.md").read_text()
    assert "| p (gt vs crowd) |" in table1
    dice = pd.read_csv(work / "results/tables/test_dice.tsv", sep="\t")
    assert sorted(set(dice.source)) == ["crowd", "gt"] and len(dice) == 2 * N_TEST * 5
    sbatch = next(line.strip() for line in log.splitlines() if "sbatch call:" in line and "rule_nnunet_train" in line)
    assert "--gpus=1" in sbatch
    comment = re.search(r"--comment (\S+)", sbatch).group(1)
    train = next(j for j in by_rule["nnunet_train"] if j["Comment"] == comment)
    with capsys.disabled():  # the CI log shows one GPU job as submitted and as SLURM recorded it
        print(
            f"\n[slurm] {log.strip().splitlines()[-1]}; {len(jobs)} sbatch jobs completed "
            f"(before batches and groups: {SUBMISSIONS_BEFORE}): "
            + ", ".join(f"{r} {len(records)}" for r, records in sorted(by_rule.items()))
        )
        print(f"[slurm] {sbatch}")
        print(
            f"[slurm] scontrol: JobId={train['JobId']} Comment={train['Comment']} "
            f"TresPerJob={train['TresPerJob']} JOB_GRES={train['JOB_GRES']} TRES={train['TRES']} "
            f"JobState={train['JobState']}"
        )


def planned(work: Path, *args: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run plans."""
    run = snakemake(work, "-n", *args)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs, rule = [], None
    for line in (run.stdout + run.stderr).splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line.strip()):
            rule = m.group(1)
            jobs.append((rule, {}))
        elif rule and (m := re.match(r"^wildcards: (.*)$", line.strip())):
            jobs[-1][1].update(dict(kv.split("=", 1) for kv in m.group(1).split(", ")))
    return jobs


def test_a_new_annotator_folder_plans_only_its_jobs_and_the_crowd_side(slurm_study, annotator_folders):
    work, cfg, _ = slurm_study
    assert planned(work, "--configfile", str(cfg)) == []  # the finished study has nothing to do
    shutil.copytree(annotator_folders / NEW_ANNOTATOR, work / "annotations" / NEW_ANNOTATOR)
    try:
        jobs = planned(work, "--configfile", str(cfg))
        slurm_plan = snakemake(work, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(cfg))
        submitted = submissions.count((slurm_plan.stdout + slurm_plan.stderr).splitlines())
    finally:
        shutil.rmtree(work / "annotations" / NEW_ANNOTATOR)
    rules = sorted({rule for rule, _ in jobs})
    assert "embed" not in rules and "segmenter" not in rules and "check_case" not in rules
    mine = [w for r, w in jobs if r == "masks"]
    assert mine == [{"annotator": NEW_ANNOTATOR, "batch": "batch0001"}]
    for rule, wildcards in jobs:
        assert "gt" not in (wildcards.get("source"), wildcards.get("dataset", "").rsplit("_", 1)[-1]), rule
    nnunet = sorted((r, w.get("dataset") or w.get("source", "")) for r, w in jobs if r.startswith("nnunet"))
    assert nnunet == [
        ("nnunet_dataset", "Dataset502_samcrowd_crowd"),
        ("nnunet_evaluate", ""),
        ("nnunet_predict", "crowd"),
        ("nnunet_preprocess", "Dataset502_samcrowd_crowd"),
        ("nnunet_train", "Dataset502_samcrowd_crowd"),
        ("nnunet_train", "Dataset502_samcrowd_crowd"),
    ]
    assert {"quality", "fuse", "evaluate_case", "evaluate", "stats"} <= set(rules)
    assert submitted == {
        "masks": 1,
        "quality": 1,
        "fusion": 1,  # fuse and evaluate_case of the 3 cases
        "nnunet_prepare": 1,
        "nnunet_train": 2,
        "nnunet_predict": 1,
        "nnunet_evaluate": 1,
    }


def test_a_new_plot_setting_reruns_only_figures(slurm_study, tmp_path):
    work, cfg, _ = slurm_study
    dpi = write_config(tmp_path / "dpi.yaml", "figures: {dpi: 90}\n")
    rules = {rule for rule, _ in planned(work, "--configfile", str(cfg), str(dpi))}
    assert rules and all(r.startswith("figure_") or r in ("provenance", "all") for r in rules), rules
