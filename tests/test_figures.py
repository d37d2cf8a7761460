"""Figures: written as PNG and SVG, byte for byte reproducible, views in radiological convention."""

from __future__ import annotations

import numpy as np
import pandas as pd

from samcrowd import figures, io, stats
from samcrowd.geometry import reorient

ORGANS = ["liver", "aorta"]


def dice_table():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        [
            {"source": s, "case": f"c{i}", "organ": o, "dice": float(rng.uniform(0.6, 0.95))}
            for s in ("gt", "crowd")
            for i in range(5)
            for o in ORGANS
        ]
    )


def test_figures_are_reproducible_byte_for_byte(tmp_path):
    dice = dice_table()
    comparison = stats.compare(dice, ORGANS, reference="gt", correct=False)
    for run in ("a", "b"):
        figures.test_dice_figure(
            dice=dice,
            comparison=comparison,
            organs=ORGANS,
            outs=[tmp_path / f"{run}.png", tmp_path / f"{run}.svg"],
            reference="gt",
            dpi=150,
        )
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert b"<svg" in (tmp_path / "a.svg").read_bytes()[:500]


def test_reliability_and_annotation_figures(tmp_path):
    quality = pd.DataFrame(
        {
            "annotator": ["a", "b"],
            "box_iou": [0.7, 0.3],
            "mask_dice_loo": [0.8, 0.4],
            "staple_sensitivity": [0.9, 0.5],
            "reliability": [0.8, 0.4],
            "rank": [1, 2],
            "flagged": [False, True],
        }
    )
    figures.reliability_figure(quality=quality, threshold=0.6, outs=[tmp_path / "q.png"], dpi=150)
    volumes = pd.DataFrame(
        [
            {"case": "c", "organ": o, "source": s, "dice": 0.7, "n_ref": 1, "n_pred": 1}
            for o in ORGANS
            for s in ("stacked", "crowd")
        ]
    )
    slices = pd.DataFrame(
        [
            {"case": "c", "organ": o, "source": "stacked", "slice": 1, "dice": 0.9, "n_ref": 1, "n_pred": 1}
            for o in ORGANS
        ]
    )
    figures.annotation_figure(slices=slices, volumes=volumes, organs=ORGANS, outs=[tmp_path / "a.png"], dpi=150)
    assert (tmp_path / "q.png").stat().st_size > 5000 and (tmp_path / "a.png").stat().st_size > 5000


def test_overlay_views_follow_radiological_and_anatomical_conventions():
    canon = np.zeros((10, 12, 8), np.uint8)  # RAS: index grows toward right, anterior, superior
    canon[-1, :, :] = 1  # patient's far right
    canon[:, -1, :] += 2  # most anterior
    canon[:, :, -1] += 4  # most superior
    views = figures._views(canon, (5, 6, 4))
    assert (views["axial"][:, 0] & 1).all()  # patient right on the image left
    assert (views["axial"][0, :] & 2).all()  # anterior up
    assert (views["coronal"][0, :] & 4).all() and (views["coronal"][:, 0] & 1).all()  # superior up, right left
    assert (views["sagittal"][0, :] & 4).all() and (views["sagittal"][:, 0] & 2).all()  # superior up, anterior left


def test_overlay_figure_of_a_stored_las_case(tmp_path):
    image = np.full((20, 24, 10), -1000, np.int16)
    label = np.zeros((20, 24, 10), np.uint8)
    label[5:12, 6:14, 3:7] = 1
    data, affine = reorient(image, np.diag([1.0, 1.0, 3.0, 1.0]), "LAS")
    lab, _ = reorient(label, np.diag([1.0, 1.0, 3.0, 1.0]), "LAS")
    io.save_volume(tmp_path / "i.nii.gz", data, affine)
    io.save_volume(tmp_path / "l.nii.gz", lab, affine)
    figures.overlay_figure(
        tmp_path / "i.nii.gz",
        lab,
        {"crowd": tmp_path / "l.nii.gz"},
        ["liver"],
        [tmp_path / "o.png"],
        "test",
        dpi=150,
        level=40,
        width=400,
    )
    assert (tmp_path / "o.png").stat().st_size > 5000
