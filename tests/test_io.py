"""File I/O: atomic writes, exact label casts."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from samcrowd import io
from samcrowd.errors import SamcrowdError


def test_atomic_output_publishes_only_on_success(tmp_path):
    target = tmp_path / "out" / "table.tsv"
    with pytest.raises(RuntimeError):
        with io.atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with io.atomic_output(target) as tmp:
        tmp.write_text("whole")
        assert not target.exists()
    assert target.read_text() == "whole"


def test_atomic_directory_replaces_an_old_one(tmp_path):
    target = tmp_path / "slices"
    target.mkdir()
    (target / "stale.png").write_text("old")
    with io.atomic_output(target, directory=True) as tmp:
        (tmp / "new.png").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.png"]


def test_labels_stored_as_floats_load_as_exact_integers(tmp_path):
    # the study's SAM volumes store labels as scaled floats (1.00000004)
    io.save_volume(tmp_path / "l.nii.gz", np.array([0, 1.00000004, 5.0000002], np.float32).reshape(1, 1, 3), np.eye(4))
    data, _ = io.load_volume(tmp_path / "l.nii.gz", np.uint8)
    assert data.dtype == np.uint8 and data.ravel().tolist() == [0, 1, 5]
    io.save_volume(tmp_path / "f.nii.gz", np.array([0, 1.5, 2], np.float32).reshape(1, 1, 3), np.eye(4))
    with pytest.raises(SamcrowdError, match=r"f\.nii\.gz: non-integer values"):
        io.load_volume(tmp_path / "f.nii.gz", np.uint8)


def test_saved_volumes_keep_affine_and_are_byte_identical_when_rewritten(tmp_path):
    affine = np.array([[-0.8, 0, 0, 10], [0, 0.8, 0, -5], [0, 0, 3, 2], [0, 0, 0, 1]])
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    io.save_volume(tmp_path / "a.nii.gz", data, affine)
    io.save_volume(tmp_path / "b.nii.gz", data, affine)
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "b.nii.gz").read_bytes()
    back, back_affine = io.load_volume(tmp_path / "a.nii.gz")
    assert np.array_equal(back, data) and np.allclose(back_affine, affine)


def test_read_json_names_file_and_line(tmp_path):
    (tmp_path / "m.json").write_text('{\n  "a": 1,\n  oops\n}')
    with pytest.raises(SamcrowdError, match=r"m\.json:3: invalid JSON"):
        io.read_json(tmp_path / "m.json")


def test_scaled_signed_integer_storage_casts_through_a_lookup_table(tmp_path):
    import nibabel as nib

    img = nib.Nifti1Image(np.array([-3, 0, 2, 2], np.int16).reshape(1, 2, 2), np.eye(4))
    img.header.set_slope_inter(2.0, 10.0)
    nib.save(img, tmp_path / "s.nii.gz")
    data, _ = io.load_volume(tmp_path / "s.nii.gz", np.uint8)
    assert data.ravel().tolist() == [4, 10, 14, 14]


def test_a_writer_killed_mid_write_leaves_no_output_and_the_next_job_sweeps_its_temporary(tmp_path):
    out = tmp_path / "table.tsv"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time\nfrom samcrowd import io\n"
                f"with io.atomic_output({str(out)!r}) as tmp:\n"
                "    tmp.write_text('half a table')\n    print('writing', flush=True)\n    time.sleep(60)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    left = list(tmp_path.iterdir())
    assert not out.exists() and [p.name for p in left] == [f".tmp-{writer.pid}-table.tsv"]
    (tmp_path / ".tmp-7-table.tsv").mkdir()  # an interrupted directory output
    (tmp_path / ".tmp-8-other.tsv").write_text("another job's")
    swept = io.remove_stale_temporaries(out)
    assert sorted(p.name for p in swept) == sorted([f".tmp-{writer.pid}-table.tsv", ".tmp-7-table.tsv"])
    assert [p.name for p in tmp_path.iterdir()] == [".tmp-8-other.tsv"]
