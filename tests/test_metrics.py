"""Dice, the nnU-Net way: the same numbers as nnUNetv2_evaluate_simple, NaN when both are empty."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from samcrowd import io
from samcrowd.metrics import dice, label_counts, label_dice


def test_dice_basics():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert math.isnan(dice(a, b))  # both empty
    a[0, :2] = True
    assert dice(a, b) == 0.0
    b[0, 1:3] = True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0


def test_label_counts_and_dice():
    ref = np.array([[0, 1, 1], [2, 2, 0]])
    pred = np.array([[1, 1, 0], [2, 0, 0]])
    assert label_counts(ref, pred, [1, 2, 3]) == {1: (1, 2, 2), 2: (1, 2, 1), 3: (0, 0, 0)}
    d = label_dice(ref, pred, [1, 2, 3])
    assert d[1] == 0.5 and d[2] == pytest.approx(2 / 3) and math.isnan(d[3])
    with pytest.raises(ValueError):
        label_counts(ref, pred[:1], [1])


def test_dice_agrees_with_nnunet_evaluate_simple(tmp_path):
    rng = np.random.default_rng(7)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    ours = {}
    affine = np.diag([-0.8, 0.8, 3.0, 1.0])
    for i in range(4):
        ref = np.zeros((40, 36, 12), np.uint8)
        pred = np.zeros_like(ref)
        for label in (1, 2, 3, 4):
            if (i, label) == (1, 4):
                continue  # label 4 absent from both: NaN
            c = rng.integers(8, 28, 3)
            ref[c[0] - 5 : c[0] + 5, c[1] - 4 : c[1] + 4, max(c[2] - 4, 0) : c[2] + 3] = label
            d = rng.integers(-3, 4, 3)
            c = c + d
            pred[c[0] - 5 : c[0] + 6, c[1] - 3 : c[1] + 4, max(c[2] - 3, 0) : c[2] + 3] = label
        if i == 2:
            pred[pred == 3] = 0  # a missed label: Dice 0
        pred[rng.random(pred.shape) < 0.02] = 5  # noise of a label the reference lacks
        io.save_volume(tmp_path / "gt" / f"case{i}.nii.gz", ref, affine)
        io.save_volume(tmp_path / "pred" / f"case{i}.nii.gz", pred, affine)
        ours[f"case{i}"] = label_dice(ref, pred, [1, 2, 3, 4, 5])
    tool = Path(sys.executable).parent / "nnUNetv2_evaluate_simple"
    env = {
        **os.environ,
        "nnUNet_raw": str(tmp_path),
        "nnUNet_preprocessed": str(tmp_path),
        "nnUNet_results": str(tmp_path),
    }
    run = subprocess.run(
        [
            str(tool),
            str(tmp_path / "gt"),
            str(tmp_path / "pred"),
            "-l",
            "1",
            "2",
            "3",
            "4",
            "5",
            "-o",
            str(tmp_path / "summary.json"),
            "-np",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    compared = 0
    for entry in summary["metric_per_case"]:
        case = Path(entry["reference_file"]).name.removesuffix(".nii.gz")
        for label, metrics in entry["metrics"].items():
            theirs, mine = metrics["Dice"], ours[case][int(label)]
            if theirs is None or (isinstance(theirs, float) and math.isnan(theirs)):
                assert math.isnan(mine)
            else:
                assert abs(theirs - mine) < 1e-6
            compared += 1
    assert compared == 20
    assert any(math.isnan(v) for d in ours.values() for v in d.values())
    assert any(v == 0 for d in ours.values() for v in d.values())
