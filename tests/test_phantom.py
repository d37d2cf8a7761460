"""The synthetic abdomen: deterministic, anatomically placed, CT-like, in the requested orientation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from samcrowd import cases, io
from samcrowd.geometry import orientation_code
from samcrowd.phantom import LABELS, PhantomSettings, case_table, make_case, write_study

SMALL = PhantomSettings.from_config(shape=(96, 96, 24), n_train=2, n_test=1)


def world_centroid(mask, affine):
    ijk = np.argwhere(mask).mean(axis=0)
    return nib.affines.apply_affine(affine, ijk)  # RAS+ millimetres


def test_same_seed_same_volumes_and_other_seed_other_volumes():
    a = make_case(SMALL, 0, "LAS")
    b = make_case(SMALL, 0, "LAS")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = make_case(PhantomSettings.from_config(shape=SMALL.shape, seed=1), 0, "LAS")
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], make_case(SMALL, 1, "LAS")[0])  # cases differ


@pytest.mark.parametrize("code", ["LAS", "RAS", "LPS", "PIR"])
def test_orientation_spacing_and_anatomy_in_patient_space(code):
    image, label, affine = make_case(SMALL, 0, code)
    assert orientation_code(affine) == code
    assert image.dtype == np.int16 and label.dtype == np.uint8
    spacing = sorted(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)).round(4))
    assert spacing == sorted(SMALL.spacing)
    assert set(np.unique(label)) == {0, *LABELS.values()}
    c = {organ: world_centroid(label == v, affine) for organ, v in LABELS.items()}
    assert c["liver"][0] > 0 > c["spleen"][0]  # liver on the patient's right, spleen left
    assert c["right_kidney"][0] > 0 > c["left_kidney"][0]
    assert c["aorta"][0] < 0.02 * SMALL.shape[0] * SMALL.spacing[0]  # at or left of the midline
    for organ in ("right_kidney", "left_kidney", "spleen"):
        assert c[organ][1] < c["liver"][1]  # posterior to the liver's centre
    assert c["liver"][2] > c["right_kidney"][2]  # kidneys lie lower than the liver


def test_ct_like_intensities():
    image, label, _ = make_case(PhantomSettings.from_config(), 0, "LAS")
    hu = {organ: image[label == v] for organ, v in LABELS.items()}
    assert image.min() <= -900  # air around the body
    assert (image > 400).sum() > 1000  # bone
    liver, spleen = (np.percentile(hu[o], [10, 90]) for o in ("liver", "spleen"))
    assert liver[0] < spleen[1] and spleen[0] < liver[1]  # overlapping HU ranges, as in real CT
    assert np.median(hu["aorta"]) > np.median(hu["liver"]) + 80  # contrast-bright aorta
    assert 8 < np.std(hu["liver"]) < 40  # noise and texture, not flat
    for organ, v in LABELS.items():
        assert (label == v).sum() > 500, organ


def test_default_has_eight_train_six_test_and_a_few_other_orientations():
    table = case_table(PhantomSettings.from_config())
    assert list(table.split).count("train") == 8 and list(table.split).count("test") == 6
    others = table[table.orientation != "LAS"]
    assert 2 <= len(others) <= 6
    assert {"train", "test"} <= set(others.split)
    assert table.case.is_unique


def test_write_study_produces_a_valid_case_sheet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = PhantomSettings.from_config(shape=(32, 32, 10), n_train=2, n_test=1, orientations=("LAS", "RAS"))
    write_study(settings=settings, sheet_path="results/data/cases.tsv")
    sheet = cases.read_sheet("results/data/cases.tsv")
    assert list(sheet.split) == ["train", "train", "test"]
    for row in sheet.itertuples():
        summary = cases.check_pair(row.image, row.label)
        assert summary["shape"] in ([32, 32, 10],)
    _, affine = io.read_header(sheet.image[1])
    assert orientation_code(affine) == "RAS"
    assert not list((tmp_path / "results/data").rglob(".tmp-*"))
