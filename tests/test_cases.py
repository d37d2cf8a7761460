"""Case sheets and image/label pairs: every problem is one line naming the file (and line)."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from samcrowd import cases, io
from samcrowd.config import load_dataset
from samcrowd.errors import SamcrowdError

AFFINE = np.diag([-0.8, 0.8, 3.0, 1.0])


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with three small image/label pairs."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("a", "b", "c"):
        io.save_volume(tmp_path / f"data/{name}.nii.gz", np.zeros((8, 8, 4), np.int16), AFFINE)
        io.save_volume(tmp_path / f"data/{name}_seg.nii.gz", np.zeros((8, 8, 4), np.uint8), AFFINE)
    return tmp_path


def sheet(path, *rows, header="case\timage\tlabel\tsplit"):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_a_good_sheet_resolves_paths_against_its_folder(project):
    s = sheet(project / "data/cases.tsv", "a\ta.nii.gz\ta_seg.nii.gz\ttrain", "b\tb.nii.gz\t\ttest")
    table = cases.read_sheet(s)
    assert table.to_dict("records") == [
        {"case": "a", "image": "data/a.nii.gz", "label": "data/a_seg.nii.gz", "split": "train"},
        {"case": "b", "image": "data/b.nii.gz", "label": "", "split": "test"},
    ]


def test_a_sheet_without_label_column_is_fine(project):
    s = sheet(project / "cases.tsv", "a\tdata/a.nii.gz\ttrain", header="case\timage\tsplit")
    assert cases.read_sheet(s).label.tolist() == [""]


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            ["a\tdata/a.nii.gz\t\ttrain", "b\tdata/b.nii.gz\t\ttest", "a\tdata/c.nii.gz\t\ttest"],
            r"cases\.tsv:4: case 'a' is defined twice \(first on line 2\)",
        ),
        (["a\tdata/a.nii.gz\t\tvalidation"], r"cases\.tsv:2: case sheet: key 'split': 'validation' is not one of"),
        (["a\tdata/missing.nii.gz\t\ttrain"], r"cases\.tsv:2: image 'data/missing\.nii\.gz' does not exist"),
        (
            ["a\tdata/a.nii.gz\tdata/nolabel.nii.gz\ttrain"],
            r"cases\.tsv:2: label 'data/nolabel\.nii\.gz' does not exist",
        ),
        (["../evil\tdata/a.nii.gz\t\ttrain"], r"cases\.tsv:2: case sheet: key 'case': '\.\./evil' does not match"),
        (["a\t../outside.nii.gz\t\ttrain"], r"cases\.tsv:2: image '\.\./outside\.nii\.gz' lies outside the project"),
        (["a\tdata/a.nii.gz\t\ttrain\textra"], r"cases\.tsv:2: more fields than columns"),
        ([], r"cases\.tsv: the case sheet lists no cases"),
    ],
)
def test_bad_sheets_are_refused_with_file_and_line(project, rows, message):
    (project.parent / "outside.nii.gz").write_bytes(b"")
    with pytest.raises(SamcrowdError, match=message) as e:
        cases.read_sheet(sheet(project / "cases.tsv", *rows))
    assert "\n" not in str(e.value)


def test_bad_headers_are_refused(project):
    with pytest.raises(SamcrowdError, match=r"cases\.tsv:1: unknown column 'lable'"):
        cases.read_sheet(sheet(project / "cases.tsv", "a\tdata/a.nii.gz\t\ttrain", header="case\timage\tlable\tsplit"))
    with pytest.raises(SamcrowdError, match=r"cases\.tsv:1: missing column 'split'"):
        cases.read_sheet(sheet(project / "cases.tsv", "a\tdata/a.nii.gz", header="case\timage"))
    with pytest.raises(SamcrowdError, match=r"nope\.tsv: case sheet not found"):
        cases.read_sheet(project / "nope.tsv")


def test_outside_paths_are_allowed_when_the_config_says_so(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    io.save_volume(elsewhere / "x.nii.gz", np.zeros((4, 4, 4), np.int16), AFFINE)
    s = sheet(project / "cases.tsv", f"x\t{elsewhere / 'x.nii.gz'}\t\ttrain")
    with pytest.raises(SamcrowdError, match="lies outside the project"):
        cases.read_sheet(s)
    assert cases.read_sheet(s, allow_outside=True).image[0] == str(elsewhere / "x.nii.gz")


def test_image_label_pairs_must_share_the_grid(project):
    summary = cases.check_pair("data/a.nii.gz", "data/a_seg.nii.gz")
    assert summary["shape"] == [8, 8, 4] and summary["orientation"] == "LAS"
    io.save_volume(project / "data/short.nii.gz", np.zeros((8, 8, 3), np.uint8), AFFINE)
    with pytest.raises(
        SamcrowdError, match=r"short\.nii\.gz: label shape \(8, 8, 3\) differs from image shape \(8, 8, 4\)"
    ):
        cases.check_pair("data/a.nii.gz", "data/short.nii.gz")
    shifted = AFFINE.copy()
    shifted[0, 3] = 5.0
    io.save_volume(project / "data/shifted.nii.gz", np.zeros((8, 8, 4), np.uint8), shifted)
    with pytest.raises(SamcrowdError, match=r"shifted\.nii\.gz: label affine differs"):
        cases.check_pair("data/a.nii.gz", "data/shifted.nii.gz")
    with pytest.raises(SamcrowdError, match=r"gone\.nii\.gz: file not found"):
        cases.check_pair("data/gone.nii.gz", None)


def test_absurd_or_broken_headers_are_refused_before_reading_data(project):
    raw = project / "huge.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), AFFINE), raw)
    data = bytearray(raw.read_bytes())
    data[42:48] = np.array([30000, 30000, 30000], "<i2").tobytes()  # dim[1..3]
    raw.write_bytes(bytes(data))
    with pytest.raises(SamcrowdError, match=r"huge\.nii: refusing absurd dimensions"):
        io.read_header(raw)
    nan = project / "nan.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), AFFINE), nan)
    data = bytearray(nan.read_bytes())
    data[252:256] = np.array([0, 1], "<i2").tobytes()  # qform_code 0, sform_code 1
    data[280:292] = np.full(3, np.nan, "<f4").tobytes()  # srow_x
    nan.write_bytes(bytes(data))
    with pytest.raises(SamcrowdError, match=r"nan\.nii: the header's affine has NaN"):
        io.read_header(nan)
    (project / "junk.nii.gz").write_bytes(b"not a nifti at all")
    with pytest.raises(SamcrowdError, match=r"junk\.nii\.gz: not a readable NIfTI"):
        io.read_header(project / "junk.nii.gz")


@pytest.fixture
def btcv_folder(tmp_path):
    """A folder laid out like the BTCV download (RawData/Training/img and .../label)."""
    dataset = load_dataset("btcv")["dataset"]
    for number in dataset["split"]["train"] + dataset["split"]["test"]:
        for kind, sub in (("image", "img"), ("label", "label")):
            path = tmp_path / "RawData/Training" / sub / dataset[kind].format(id=number)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    return tmp_path


def test_btcv_sheet_command_writes_the_published_split(btcv_folder, tmp_path):
    out = tmp_path / "cases_btcv.tsv"
    run = subprocess.run(
        [sys.executable, "-m", "samcrowd.cli", "btcv-sheet", str(btcv_folder), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote 30 cases (15 train, 15 test)" in run.stderr
    table = cases.read_sheet(out, allow_outside=True)
    assert len(table) == 30
    assert table.case[0] == "img0001" and table.image[0].endswith("RawData/Training/img/img0001.nii.gz")
    assert table.label[0].endswith("RawData/Training/label/label0001.nii.gz")
    assert sorted(table[table.split == "test"].case) == sorted(
        f"img{n:04d}" for n in [3, 4, 5, 6, 8, 9, 22, 25, 26, 31, 35, 36, 37, 38, 39]
    )


def test_btcv_sheet_names_the_missing_file(btcv_folder):
    (btcv_folder / "RawData/Training/label/label0021.nii.gz").unlink()
    run = subprocess.run(
        [sys.executable, "-m", "samcrowd.cli", "btcv-sheet", str(btcv_folder)], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"samcrowd: error: {btcv_folder}: label0021.nii.gz (case 21, train) not found below this folder"
    ]
