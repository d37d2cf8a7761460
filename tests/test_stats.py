"""Statistics: the published Table 1 (right) reproduced from the study's per-case files, and the
handling of NaN, ties and multiple organs."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import BTCV_CROWD

from samcrowd import stats
from samcrowd.errors import SamcrowdError

RESULTS = BTCV_CROWD / "results"
PUBLISHED = {  # README of ../shared/reference/btcv-crowd: GT-nnU-Net vs SAM-nnU-Net, 11 annotated cases
    "spleen": (0.88, 0.80, "< 0.001"),
    "rkidney": (0.87, 0.78, "0.06"),
    "lkidney": (0.87, 0.78, "0.02"),
    "liver": (0.94, 0.84, "< 0.001"),
    "aorta": (0.92, 0.78, "< 0.001"),
}


def test_the_published_means_and_p_values_are_reproduced():
    table = stats.compare_tables(RESULTS / "GT-nnunet-11-pred.csv", RESULTS / "SAM-nnunet-11-pred.csv").set_index(
        "organ"
    )
    for organ, (gt, sam, p) in PUBLISHED.items():
        assert round(table.loc[organ, "reference_mean"], 2) == gt
        assert round(table.loc[organ, "other_mean"], 2) == sam
        assert stats.format_p(table.loc[organ, "p_other"]) == p
        assert table.loc[organ, "pairs_other"] == 15
    assert table.loc["spleen", "p_other"] == pytest.approx(2 / 2**15)  # exact: every case favours GT
    assert table.loc["rkidney", "p_other"] == pytest.approx(0.063720703125)
    assert (round(table.loc["mean", "reference_mean"], 2), round(table.loc["mean", "other_mean"], 2)) == (0.90, 0.80)


def test_the_compare_command_prints_the_published_table():
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "samcrowd.cli",
            "compare",
            str(RESULTS / "GT-nnunet-11-pred.csv"),
            str(RESULTS / "SAM-nnunet-11-pred.csv"),
            "--labels",
            "GT-nnU-Net",
            "SAM-nnU-Net",
            "--holm",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "| organ | GT-nnU-Net | SAM-nnU-Net | p (GT-nnU-Net vs SAM-nnU-Net) |"
    assert "| spleen | 0.88 ± 0.22 | 0.80 ± 0.23 | < 0.001 (Holm < 0.001) |" in lines
    assert "| rkidney | 0.87 ± 0.23 | 0.78 ± 0.14 | 0.06 (Holm 0.06) |" in lines
    assert "| lkidney | 0.87 ± 0.24 | 0.78 ± 0.17 | 0.02 (Holm 0.04) |" in lines
    assert "n = 15 paired cases" in run.stdout


def test_tables_that_do_not_pair_are_refused(tmp_path):
    gt = pd.read_csv(RESULTS / "GT-nnunet-11-pred.csv")
    gt.iloc[:-1].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(SamcrowdError, match=r"short\.csv: the tables list different cases"):
        stats.compare_tables(RESULTS / "GT-nnunet-11-pred.csv", tmp_path / "short.csv")
    gt.drop(columns="aorta_dice").to_csv(tmp_path / "fewer.csv", index=False)
    with pytest.raises(SamcrowdError, match=r"fewer\.csv: organ columns differ"):
        stats.compare_tables(RESULTS / "GT-nnunet-11-pred.csv", tmp_path / "fewer.csv")
    with pytest.raises(SamcrowdError, match=r"nope\.csv: file not found"):
        stats.compare_tables(tmp_path / "nope.csv", tmp_path / "fewer.csv")


def test_nan_pairs_are_dropped_and_identical_samples_give_p_one():
    a = pd.Series([0.9, 0.8, np.nan, 0.7, 0.95, 0.85], index=list("abcdef"))
    b = pd.Series([0.8, 0.7, 0.5, np.nan, 0.9, 0.8], index=list("abcdef"))
    p, n = stats.paired_wilcoxon(a, b)
    assert n == 4 and p == pytest.approx(0.125)  # 4 pairs, all favour a: exact 2/2^4
    assert stats.paired_wilcoxon(a, a) == (1.0, 5)
    assert math.isnan(stats.paired_wilcoxon(a[:0], b[:0])[0])


def test_holm_step_down():
    assert stats.holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(stats.holm([0.01, float("nan")])[1])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_the_overall_row_compares_each_cases_mean_over_organs():
    rows = []
    for case, (g1, g2, c1, c2) in enumerate([(0.9, 0.7, 0.8, 0.7), (0.8, np.nan, 0.6, 0.4), (0.95, 0.9, 0.9, 0.85)]):
        rows += [
            {"source": "gt", "case": case, "organ": "a", "dice": g1},
            {"source": "gt", "case": case, "organ": "b", "dice": g2},
            {"source": "crowd", "case": case, "organ": "a", "dice": c1},
            {"source": "crowd", "case": case, "organ": "b", "dice": c2},
        ]
    table = stats.compare(pd.DataFrame(rows), ["a", "b"], reference="gt", correct=False).set_index("organ")
    assert table.loc["mean", "gt_mean"] == pytest.approx(np.mean([0.8, 0.8, 0.925]))  # NaN skipped per case
    assert table.loc["b", "gt_n"] == 2 and table.loc["b", "pairs_crowd"] == 2
    assert table.loc["a", "gt_sd"] == pytest.approx(np.std([0.9, 0.8, 0.95], ddof=1))
