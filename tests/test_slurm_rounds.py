"""nnU-Net under a cluster's time limit, through the real single-node SLURM and profiles/slurm.

A fold whose training (3 minutes) is longer than `cluster.max_job_minutes` (1) trains in 3 chained
rounds on a partition whose jobs may run one minute. One job of fold 1 stalls in the middle of an
epoch until SLURM kills it at its time limit: SLURM's warning signal, asked by the profile, has the
trainer write the last epoch boundary first, so the retry continues from there and loses less than
that epoch. Both folds end with the weights, and the model with the predictions, of an uninterrupted
training with the same seed (bit for bit: the checkpoints carry the random states). A runtime cap
above the partition's own limit is refused before anything is submitted.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, snakemake, write_config
from slurm_cluster import SHORT_PARTITION, rule_of

from samcrowd import io, nnunet, submissions

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

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


def through_slurm(work: Path, cfg: Path, *args: str, more: Path | None = None) -> subprocess.CompletedProcess:
    return snakemake(
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
        timeout=900,
    )


def seconds(slurm_time: str) -> int:
    parts = [int(p) for p in slurm_time.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


@pytest.fixture(scope="module")
def rounds_study(slurm, tmp_path_factory):
    """Prepared locally, an uninterrupted model trained locally, then the training in rounds through SLURM:
    (work folder, config, dry run's submissions, snakemake's log, paths of the uninterrupted model)."""
    work = tmp_path_factory.mktemp("rounds")
    cfg = write_config(work / "rounds.yaml", CONFIG)
    stall = work / "stall"
    stall.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("nnUNet_extTrainer", str(TRAINERS))
        mp.setenv("SAMCROWD_TEST_STALL", str(stall))
        splits = "results/nnunet/preprocessed/Dataset501_samcrowd_gt/splits_final.json"
        prep = snakemake(work, splits, "results/nnunet/imagesTs", "--cores", "2", "--configfile", str(cfg))
        assert prep.returncode == 0, prep.stderr[-3000:]

        # the same training in one piece, with no limit and no SLURM
        whole = {k: str(work / "results/nnunet" / k) for k in ("raw", "preprocessed")}
        whole["results"] = str(work / "uninterrupted")
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
        plan = through_slurm(work, cfg, *FINAL, "-n")
        assert plan.returncode == 0, plan.stderr[-3000:]
        planned = submissions.count((plan.stdout + plan.stderr).splitlines())

        (stall / f"fold_{STALL[0]}_epoch_{STALL[1]}").touch()
        start = time.perf_counter()
        run = through_slurm(work, cfg, *FINAL)
        log = run.stdout + run.stderr + f"\nwall time through SLURM: {time.perf_counter() - start:.0f} s\n"
        (work / "snakemake.log").write_text(log)
        assert run.returncode == 0, log[-5000:]
        assert not (stall / f"fold_{STALL[0]}_epoch_{STALL[1]}").exists()  # it did stall

        # the test image predicted by the ensemble of each model's folds
        test_cases = [
            p.name.removesuffix("_0000.nii.gz") for p in (work / "results/nnunet/imagesTs").glob("*_0000.nii.gz")
        ]
        for model, paths in (
            ("rounds", {**whole, "results": str(work / "results/nnunet/results")}),
            ("uninterrupted", whole),
        ):
            nnunet.predict(
                images=work / "results/nnunet/imagesTs",
                cases=[(c, str(work / f"results/data/images/{c}.nii.gz")) for c in test_cases],
                out_dir=work / f"predictions_{model}",
                paths=paths,
                dataset_id=501,
                configuration="3d_fullres",
                trainer=TRAINER,
                n_folds=FOLDS,
                device="cpu",
            )
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
