"""The study on a real single-node SLURM through profiles/slurm, and what a rerun plans after it.

One study (SAM segmenter, annotators read from a folder, nnU-Net on gt and crowd labels) runs
through the profile: batch jobs for the SAM stage, group jobs for the per-case work, aggregations
on the submitting node. SLURM's own job records must show few submissions, all completed, and a
GPU requested and granted for exactly the GPU rules, one each. The finished study is then the
starting point of the incremental-rerun specifications: a new annotator folder, or a new plot
setting, plans only what depends on it.

Beside it, through the same SLURM, nnU-Net under a cluster's time limit: a fold whose training (3
minutes) is longer than `cluster.max_job_minutes` (1) trains in 3 chained rounds on a partition
whose jobs may run one minute. One job of fold 1 stalls in the middle of an
epoch until SLURM kills it at its time limit: SLURM's warning signal, asked by the profile, has the
trainer write the last epoch boundary first, so the retry continues from there and loses less than
that epoch. Both folds end with the weights, and the model with the predictions, of an uninterrupted
training with the same seed (bit for bit: the checkpoints carry the random states). A runtime cap
above the partition's own limit is refused before anything is submitted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, snakemake, snakemake_command, write_config
from slurm_cluster import GROUPS, SHORT_PARTITION, rule_of

from samcrowd import io, nnunet, submissions

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
def slurm_study(slurm, annotator_folders, tiny_checkpoint, tmp_path_factory, rounds_started):
    """The whole study run with `--profile profiles/slurm`, beside the rounds scenario's run; (folder,
    config, snakemake's log)."""
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


# ---- nnU-Net in rounds under a time limit -------------------------------------------------

TRAINERS = REPO / "tests" / "trainers"
TRAINER = "nnUNetTrainer_samcrowdRoundsTest"  # tests/trainers: samcrowd's tiny trainer, 6 epochs
EPOCHS, ROUNDS, FOLDS = 6, 3, 2
STALL = (1, 3)  # fold 1 stalls in epoch 3, the second of its round 2
WARNING_S = 25  # SLURM's warning, seconds before the one-minute limit
CONFIG = f"""
phantom: {{n_train: 2, n_test: 1, shape: [48, 48, 16], orientations: [RAS, LPS, LAS]}}
segmenter: {{kind: random_walker}}
cluster: {{max_job_minutes: 1}}
nnunet:
  sources: [gt]
  configuration: 3d_fullres
  trainer: {TRAINER}
  folds: {FOLDS}
  device: cpu
  threads: 1
  deterministic: true
  train_resources: {{mem_mb: 2000, runtime: 3}}
"""
TRAINING_RULES = ("nnunet_train_round", "nnunet_train")
#: the training jobs on the one-minute partition, warned WARNING_S before their limit
ON_SHORT = [f"{rule}:slurm_partition={SHORT_PARTITION}" for rule in TRAINING_RULES] + [
    f"{rule}:slurm_extra='--signal=URG@{WARNING_S}'" for rule in TRAINING_RULES
]
FINAL = [
    f"results/nnunet/results/Dataset501_samcrowd_gt/{TRAINER}__nnUNetPlans__3d_fullres/fold_{fold}/checkpoint_final.pth"
    for fold in range(FOLDS)
]


def through_slurm_command(work: Path, cfg: Path, *args: str, more: Path | None = None) -> list[str]:
    return snakemake_command(
        work,
        *args,
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--set-resources",
        *ON_SHORT,
        # the first status check after a submission: a round takes about 15 s here, and each later check of a
        # round without news waits 10 s longer, so a check after 2 s would find it at 36 s
        "--slurm-init-seconds-before-status-checks",
        "17",
        "--cores",
        "2",
        "--configfile",
        str(cfg),
        *([str(more)] if more else []),
    )


def through_slurm(work: Path, cfg: Path, *args: str, more: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "nnUNet_extTrainer": str(TRAINERS)}
    return subprocess.run(
        through_slurm_command(work, cfg, *args, more=more), cwd=work, env=env, capture_output=True, text=True
    )


def seconds(slurm_time: str) -> int:
    parts = [int(p) for p in slurm_time.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def predict(work: Path, model: str, paths: dict[str, str]) -> None:
    """The test images predicted by the ensemble of a model's folds, into predictions_<model>."""
    images = work / "results/nnunet/imagesTs"
    cases = [p.name.removesuffix("_0000.nii.gz") for p in images.glob("*_0000.nii.gz")]
    nnunet.predict(
        images=images,
        cases=[(c, str(work / f"results/data/images/{c}.nii.gz")) for c in cases],
        out_dir=work / f"predictions_{model}",
        paths=paths,
        dataset_id=501,
        configuration="3d_fullres",
        trainer=TRAINER,
        n_folds=FOLDS,
        device="cpu",
    )


@pytest.fixture(scope="module")
def rounds_started(slurm, annotator_folders, tmp_path_factory):
    """The rounds scenario prepared locally, its dry run counted, and its run through SLURM started in the
    background (the study's run goes on beside it): (work folder, config, dry run's submissions, process,
    stall flag, start time). `annotator_folders` first: no local work competes with the SLURM jobs."""
    work = tmp_path_factory.mktemp("rounds")
    cfg = write_config(work / "rounds.yaml", CONFIG)
    stall = work / "stall"
    stall.mkdir()
    env = {**os.environ, "nnUNet_extTrainer": str(TRAINERS), "SAMCROWD_TEST_STALL": str(stall)}
    splits = "results/nnunet/preprocessed/Dataset501_samcrowd_gt/splits_final.json"
    prep = subprocess.run(
        snakemake_command(work, splits, "results/nnunet/imagesTs", "--cores", "2", "--configfile", str(cfg)),
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert prep.returncode == 0, prep.stderr[-3000:]
    plan = subprocess.run(
        through_slurm_command(work, cfg, *FINAL, "-n"), cwd=work, env=env, capture_output=True, text=True
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    planned = submissions.count((plan.stdout + plan.stderr).splitlines())
    flag = stall / f"fold_{STALL[0]}_epoch_{STALL[1]}"
    flag.touch()
    out = open(work / "snakemake.log", "w")  # noqa: SIM115 (closed by rounds_study)
    run = subprocess.Popen(through_slurm_command(work, cfg, *FINAL), cwd=work, env=env, stdout=out, stderr=out)
    yield work, cfg, planned, run, flag, time.perf_counter()
    if run.poll() is None:
        run.kill()
    out.close()


@pytest.fixture(scope="module")
def rounds_study(rounds_started, slurm_study):
    """The rounds scenario finished through SLURM, then the same training uninterrupted, locally, and both
    models' predictions: (work folder, config, dry run's submissions, snakemake's log, the uninterrupted
    model's paths)."""
    work, cfg, planned, run, flag, start = rounds_started
    returncode = run.wait(timeout=900)
    log = (work / "snakemake.log").read_text() + f"\nwall time through SLURM: {time.perf_counter() - start:.0f} s\n"
    assert returncode == 0, log[-5000:]
    assert not flag.exists()  # it did stall
    whole = {k: str(work / "results/nnunet" / k) for k in ("raw", "preprocessed")}
    whole["results"] = str(work / "uninterrupted")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("nnUNet_extTrainer", str(TRAINERS))
        for fold in range(FOLDS):
            nnunet.train(
                paths=whole,
                dataset_id=501,
                source="gt",
                configuration="3d_fullres",
                fold=fold,
                trainer=TRAINER,
                device="cpu",
                deterministic=True,
                seed=0,
                round_number=1,
                n_rounds=1,
            )
        predict(work, "uninterrupted", whole)
        predict(work, "rounds", {**whole, "results": str(work / "results/nnunet/results")})
    return work, cfg, planned, log, whole


def training_jobs(slurm, work: Path) -> dict[int, list[dict]]:
    """SLURM's records of the training jobs, by fold, in submission order, each with its round."""
    by_fold: dict[int, list[dict]] = {}
    for job in sorted(slurm.jobs(), key=lambda j: int(j["JobId"])):
        if job.get("WorkDir") != str(work) or rule_of(job) not in TRAINING_RULES:
            continue
        numbers = [int(n) for n in re.findall(r"_(\d+)", job["Comment"].split("_wildcards_")[1])]
        fold, round_number = numbers if rule_of(job) == "nnunet_train_round" else (numbers[0], ROUNDS)
        by_fold.setdefault(fold, []).append({**job, "round": round_number})
    return by_fold


def attempts(work: Path, fold: int) -> list[str]:
    """nnU-Net's training log of each job of a fold (one file per job, named by its start time)."""
    folder = work / f"results/nnunet/results/Dataset501_samcrowd_gt/{TRAINER}__nnUNetPlans__3d_fullres/fold_{fold}"
    return [p.read_text() for p in sorted(folder.glob("training_log_*.txt"))]


def resumed_from(text: str) -> int:
    if "starts the training (epoch 0" in text:
        return 0
    return int(re.search(r"continues from epoch (\d+) of", text).group(1))


def test_a_long_fold_trains_in_chained_rounds_within_the_limit_and_equals_an_uninterrupted_training(
    slurm, rounds_study, capsys
):
    import torch

    work, _, planned, log, whole = rounds_study
    # the dry run counts every round as a job of its own
    assert planned == {"nnunet_train_round": FOLDS * (ROUNDS - 1), "nnunet_train": FOLDS}
    jobs = training_jobs(slurm, work)
    limit = 60
    report = []
    for fold in range(FOLDS):
        chain = jobs[fold]
        texts = attempts(work, fold)
        assert len(chain) == len(texts) >= ROUNDS
        for job, text in zip(chain, texts):
            assert job["Partition"] == SHORT_PARTITION and seconds(job["TimeLimit"]) == limit
            job["from"] = resumed_from(text)
        expected = [1, 2, 2, 3] if fold == STALL[0] else [1, 2, 3]
        assert [j["round"] for j in chain] == expected
        for job in chain:
            if job["JobState"] == "COMPLETED":
                assert seconds(job["RunTime"]) <= limit
            else:  # the stalled job: killed by SLURM at its limit, in the middle of epoch 3
                assert (fold, job["JobState"], job["round"]) == (STALL[0], "TIMEOUT", 2)
        if fold == STALL[0]:
            killed = texts[1]
            assert f"test: stalling in epoch {STALL[1]} until the job is killed" in killed
            assert f"wrote checkpoint_latest.pth at epoch {STALL[1]} (SLURM's time warning" in killed
            assert re.search(
                rf"round 2/{ROUNDS} continues from epoch {STALL[1]} of {EPOCHS} \(checkpoint_latest.pth, written at "
                "SLURM's time warning",
                texts[2],
            )
            assert [j["from"] for j in chain] == [0, 2, STALL[1], 4]  # lost: part of epoch 3, less than one
            report += [
                f"fold {fold} job {chain[1]['JobId']}: {line.split(': ', 1)[1]}"
                for line in killed.splitlines()
                if "test: stalling" in line or "SLURM's time warning" in line
            ]
        else:
            assert [j["from"] for j in chain] == [0, 2, 4] and all(j["JobState"] == "COMPLETED" for j in chain)
        report += [
            f"fold {fold} round {j['round']}/{ROUNDS}: job {j['JobId']} {j['JobState']}, "
            f"elapsed {j['RunTime']} of limit {j['TimeLimit']}, resumed from epoch {j['from']}"
            for j in chain
        ]

    # the same weights as the uninterrupted training, fold by fold, and the same predictions
    for fold in range(FOLDS):
        rounds_final = torch.load(
            nnunet.fold_folder(
                {"results": str(work / "results/nnunet/results")}, 501, "gt", TRAINER, "3d_fullres", fold
            )
            / "checkpoint_final.pth",
            map_location="cpu",
            weights_only=False,
        )
        whole_final = torch.load(
            nnunet.fold_folder(whole, 501, "gt", TRAINER, "3d_fullres", fold) / "checkpoint_final.pth",
            map_location="cpu",
            weights_only=False,
        )
        assert rounds_final["current_epoch"] == whole_final["current_epoch"] == EPOCHS
        weights = rounds_final["network_weights"]
        assert weights.keys() == whole_final["network_weights"].keys()
        assert all(torch.equal(weights[k], whole_final["network_weights"][k]) for k in weights)
    predicted = sorted((work / "predictions_rounds").glob("*.nii.gz"))
    assert predicted
    for path in predicted:
        ours, _ = io.load_volume(path)
        theirs, _ = io.load_volume(work / "predictions_uninterrupted" / path.name)
        assert np.array_equal(ours, theirs) and ours.any()

    # the training status, from the folds' records
    status = subprocess.run(
        [sys.executable, "-m", "samcrowd.cli", "training-status", "--configfile", "rounds.yaml"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0, status.stderr
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("gt", str(f), f"{EPOCHS}/{EPOCHS}", str(EPOCHS), f"{ROUNDS}/{ROUNDS}", "finished") for f in range(FOLDS)
    ]
    with capsys.disabled():
        print(f"\n[slurm rounds] {log.strip().splitlines()[-1]}; partition {SHORT_PARTITION}: MaxTime 1 min")
        for line in report:
            print(f"[slurm rounds] {line}")
        print("[slurm rounds] final weights of both folds and the test predictions equal the uninterrupted run's")
        print("[slurm rounds] samcrowd training-status:\n" + status.stdout)


def test_a_cap_above_the_partitions_limit_is_refused_before_any_submission(slurm, rounds_study, capsys):
    work, cfg, _, _, _ = rounds_study
    before = len(slurm.jobs())
    cap = write_config(work / "cap.yaml", "cluster: {max_job_minutes: 5}\n")  # above the partition's 1 min
    run = through_slurm(work, cfg, *FINAL, more=cap)
    assert run.returncode != 0
    output = run.stdout + run.stderr
    line = next((line for line in output.splitlines() if "refused before submitting" in line), output[-3000:])
    assert line.endswith(
        f"config: key 'cluster.max_job_minutes': 5 min is more than partition '{SHORT_PARTITION}' allows "
        "(MaxTime 1:00 = 1 min, rule nnunet_train); set it to 1 or less"
    )
    assert len(slurm.jobs()) == before  # nothing reached SLURM
    with capsys.disabled():
        print(f"\n[slurm rounds] refused: {line}")
