"""Evaluation against expert labels: which slices count, what is excluded, Table 1 (left)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from samcrowd import evaluation, io
from samcrowd.geometry import SliceGeometry

AFFINE = np.diag([-1.0, 1.0, 3.0, 1.0])
SHAPE = (12, 12, 6)
G = SliceGeometry.from_affine(AFFINE, SHAPE)
ORGANS = {"spleen": 1, "liver": 6}  # expert label values (BTCV)


def write(path, volume):
    io.save_volume(path, volume.astype(np.uint8), AFFINE)
    return path


def coverage(rows):
    return pd.DataFrame(
        [
            {"case": "c", "annotator": "a", "slice": k, "organ": o, "status": s, "boxes": 1, "voxels": 0}
            for k, o, s in rows
        ]
    )


@pytest.fixture
def case(tmp_path):
    ref = np.zeros(SHAPE, np.uint8)
    ref[2:6, 2:6, 1:4] = 6  # liver on slices 1..3 (expert value 6 -> 2)
    ref[8:10, 8:10, 2] = 1  # spleen on slice 2 only
    ref[0, 0, 5] = 9  # a structure that is no study organ
    write(tmp_path / "ref.nii.gz", ref)
    ann = np.zeros(SHAPE, np.uint8)
    ann[2:6, 2:6, 1] = 2  # liver right on slice 1
    ann[2:6, 2:4, 3] = 2  # half the liver on slice 3
    write(tmp_path / "a.nii.gz", ann)
    io.write_tsv(
        tmp_path / "a.tsv",
        coverage([(1, "liver", "boxed"), (1, "spleen", "absent"), (3, "liver", "boxed"), (3, "spleen", "absent")]),
    )
    stacked = ann.copy()
    crowd = ann.copy()
    crowd[2:6, 2:6, 2] = 2  # completion filled slice 2
    write(tmp_path / "stacked.nii.gz", stacked)
    write(tmp_path / "crowd.nii.gz", crowd)
    pd.DataFrame(
        [
            {
                "case": "c",
                "organ": o,
                "slice": k,
                "voters": 1,
                "boxed": int(o == "liver"),
                "fused_voxels": 0,
                "completed_voxels": 0,
            }
            for k in (1, 3)
            for o in ORGANS
        ]
    ).to_csv(tmp_path / "fusion.tsv", sep="\t", index=False)
    return tmp_path


def test_volume_and_slice_dice_of_each_source(case):
    slices, volumes, exclusions = evaluation.evaluate_case(
        "c",
        case / "ref.nii.gz",
        ORGANS,
        G,
        {"a": (case / "a.nii.gz", case / "a.tsv")},
        case / "stacked.nii.gz",
        case / "crowd.nii.gz",
        case / "fusion.tsv",
        other_labels="background",
    )
    v = volumes.set_index(["source", "organ"])
    assert v.loc[("a", "liver"), "dice"] == pytest.approx(2 * 24 / (48 + 24))
    assert v.loc[("crowd", "liver"), "dice"] == pytest.approx(2 * 40 / (48 + 40))
    assert (v.loc[("a", "liver"), "n_ref"], v.loc[("a", "liver"), "n_pred"]) == (48, 24)
    s = slices[(slices.source == "a") & (slices.organ == "liver")].set_index("slice")
    assert list(s.index) == [1, 3]  # only the slices the annotator boxed the liver on
    assert s.loc[1, "dice"] == 1.0 and s.loc[3, "dice"] == pytest.approx(2 * 8 / 24)
    assert set(slices.source) == {"a", "stacked"}  # completion adds no annotated slice
    assert set(exclusions.organ) == {"spleen"} and set(exclusions.source) == {"a", "stacked", "crowd"}
    assert "annotator a drew no box of spleen on this case" in exclusions.reason.tolist()
    assert "no annotator drew a box of spleen on this case" in exclusions.reason.tolist()


def test_expert_label_values_that_are_no_organ_stop_unless_mapped_to_background(case):
    from samcrowd.errors import SamcrowdError

    with pytest.raises(SamcrowdError, match=r"ref\.nii\.gz: label value 9 is not in the organ list"):
        evaluation.read_expert_label(case / "ref.nii.gz", ORGANS)
    dense = evaluation.read_expert_label(case / "ref.nii.gz", ORGANS, "background")
    assert set(np.unique(dense)) == {0, 1, 2}


def test_both_empty_is_nan_and_left_out_of_means():
    slices = pd.DataFrame(columns=evaluation.SLICE_COLUMNS)
    volumes = pd.DataFrame(
        [
            {"case": "c1", "organ": "liver", "source": "stacked", "dice": 0.8, "n_ref": 1, "n_pred": 1},
            {"case": "c2", "organ": "liver", "source": "stacked", "dice": 0.6, "n_ref": 1, "n_pred": 1},
            {"case": "c3", "organ": "liver", "source": "stacked", "dice": float("nan"), "n_ref": 0, "n_pred": 0},
            {"case": "c1", "organ": "spleen", "source": "stacked", "dice": 0.4, "n_ref": 1, "n_pred": 1},
        ]
    )
    table = evaluation.annotation_table(slices, volumes, ["liver", "spleen"]).set_index("organ")
    assert table.loc["liver", "volume_dice_stacked_mean"] == pytest.approx(0.7)
    assert table.loc["liver", "volume_dice_stacked_sd"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    assert table.loc["liver", "volume_dice_stacked_n"] == 2
    assert table.loc["mean", "volume_dice_stacked_mean"] == pytest.approx(np.mean([0.6, 0.6]))  # c1: (0.8+0.4)/2
    assert math.isnan(table.loc["liver", "slice_dice_mean"])
    md = evaluation.to_markdown(table.reset_index())
    assert "| liver | – | 0.70 ± 0.14 (n=2) | – |" in md
    assert "| spleen | – | 0.40 (n=1) | – |" in md


def test_expert_values_map_to_the_dense_organ_values():
    label = np.array([0, 1, 2, 3, 6, 8, 11], np.uint8)
    assert evaluation.dense_labels(
        label, {"spleen": 1, "right_kidney": 2, "left_kidney": 3, "liver": 6, "aorta": 8}
    ).tolist() == [0, 1, 2, 3, 4, 5, 0]
