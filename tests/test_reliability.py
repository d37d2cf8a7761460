"""Reliability of whole runs: a clean run repeats exactly, and a run killed at any moment
(SIGKILL to the whole Snakemake process tree) finishes, after `--unlock` and
`--rerun-incomplete`, with the same tables and label volumes as a run never interrupted.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import TINY, TINY_NNUNET, snakemake, snakemake_command, write_config

pytestmark = pytest.mark.workflow

#: Outputs that differ between identical runs by design, and why; everything else must match.
NOT_COMPARED = {
    "logs/*": "time stamps and durations",
    "benchmarks/*": "measured run times",
    "nnunet/results/*": "nnU-Net's training logs are named by time; the folds' weights are compared instead",
    "nnunet/preprocessed/*": "blosc2 containers (.b2nd) differ in bytes around identical arrays; compared as arrays",
    "nnunet/predictions/*/predict_from_raw_data_args.json": "nnU-Net's record of its arguments: absolute folders",
}


def snapshot(work: Path) -> dict[str, str]:
    """A digest of every result a study is run for: bytes of tables, figures and JSON; voxels,
    affine and data type of volumes; arrays of preprocessed data; weights of trained folds."""
    import blosc2

    root = work / "results"
    digests = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or path.name.startswith(".tmp-"):
            continue
        if rel.endswith(".nii.gz"):
            image = nib.load(path)
            data = np.asanyarray(image.dataobj)
            digest = hashlib.sha256(data.tobytes() + str(data.dtype).encode() + image.affine.tobytes())
        elif rel.endswith(".b2nd"):
            digest = hashlib.sha256(blosc2.open(str(path), mode="r")[:].tobytes())
        elif rel.endswith("checkpoint_final.pth"):
            weights = torch.load(path, map_location="cpu", weights_only=False)["network_weights"]
            digest = hashlib.sha256(b"".join(weights[k].numpy().tobytes() for k in sorted(weights)))
        elif any(fnmatch.fnmatch(rel, pattern) for pattern in NOT_COMPARED):
            continue
        else:
            digest = hashlib.sha256(path.read_bytes())
        digests[rel] = digest.hexdigest()
    return digests


def differences(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def test_two_clean_runs_give_identical_tables_volumes_and_models(tiny_study, tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml", TINY_NNUNET)
    run = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    first, second = snapshot(tiny_study), snapshot(tmp_path)
    assert differences(first, second) == []
    compared = set(first)
    assert {"tables/table1.tsv", "tables/test_dice.tsv", "tables/annotation_dice.tsv"} <= compared
    assert any(k.startswith("nnunet/predictions/crowd/") and k.endswith(".nii.gz") for k in compared)
    assert sum(k.endswith("checkpoint_final.pth") for k in compared) == 6
    assert sum(k.startswith("masks/") and k.endswith(".nii.gz") for k in compared) == 4 * 4
    assert sum(k.startswith("labels/crowd/") for k in compared) == 4
    # each fold trained on one thread: two trainings side by side, each on every core, trained
    # different weights now and then
    logs = sorted((tmp_path / "results/nnunet/results").rglob("training_log_*.txt"))
    assert len(logs) == 6
    for log in logs:
        assert "torch on 1 thread(s)" in log.read_text(), log


def kill_moments(total_s: float, n: int) -> list[float]:
    """n moments spread over a run of `total_s` seconds, drawn at random (seed SAMCROWD_KILL_SEED, default 0)."""
    rng = random.Random(int(os.environ.get("SAMCROWD_KILL_SEED", "0")))
    return sorted(round(rng.uniform(0.05, 0.95) * total_s, 2) for _ in range(n))


def test_runs_killed_at_random_moments_finish_with_the_same_results(tmp_path, capsys):
    reference = tmp_path / "reference"
    reference.mkdir()
    cfg = write_config(tmp_path / "tiny.yaml", TINY)
    start = time.perf_counter()
    run = snakemake(reference, "--cores", "2", "--configfile", str(cfg))
    total = time.perf_counter() - start
    assert run.returncode == 0, run.stderr[-3000:]
    expected = snapshot(reference)
    outcomes = []
    for trial, moment in enumerate(kill_moments(total, 4)):
        work = tmp_path / f"trial{trial}"
        work.mkdir()
        proc = subprocess.Popen(
            snakemake_command(work, "--cores", "2", "--configfile", str(cfg)),
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(moment)
        alive = proc.poll() is None
        if alive:
            os.killpg(proc.pid, signal.SIGKILL)  # snakemake and every job it started
        proc.wait()
        done_before = sum(1 for p in (work / "results").rglob("*") if p.is_file()) if (work / "results").exists() else 0
        unlock = snakemake(work, "--unlock", "--configfile", str(cfg))
        assert unlock.returncode == 0, unlock.stderr[-2000:]
        rerun = snakemake(work, "--cores", "2", "--rerun-incomplete", "--configfile", str(cfg))
        assert rerun.returncode == 0, f"trial {trial}, killed at {moment} s:\n{rerun.stderr[-3000:]}"
        assert differences(expected, snapshot(work)) == [], f"trial {trial}, killed at {moment} s"
        assert not list((work / "results").rglob(".tmp-*")), "a killed job's temporary file was left behind"
        outcomes.append(
            f"killed at {moment:.1f} s of {total:.1f} s ({'running' if alive else 'already done'}, "
            f"{done_before} files written): resumed, identical"
        )
    with capsys.disabled():
        print("\n[kill] " + "\n[kill] ".join(outcomes))
