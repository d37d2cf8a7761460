"""Slice export: windowed 8-bit PNGs in radiological display, a manifest, nothing half written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from samcrowd import export, io
from samcrowd.phantom import LABELS, PhantomSettings, make_case


def test_window_maps_level_and_edges():
    hu = np.array([-1000, -160, 40, 240, 3000])
    assert export.window(hu, 40, 400).tolist() == [0, 0, 128, 255, 255]
    assert export.window(np.array([0.0]), 0, 2).tolist() == [128]


def test_png_stem_round_trips_through_the_stem_pattern():
    stem = export.png_stem("img_0001", 7)
    assert stem == "img_0001_0007"
    m = export.STEM.match(stem)
    assert m["case"] == "img_0001" and int(m["slice"]) == 7


@pytest.fixture(scope="module")
def phantom_cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    settings = PhantomSettings.from_config(shape=(80, 72, 16))
    out = {}
    for code in ("LAS", "RAS", "LPS", "SAR"):
        image, label, affine = make_case(settings, 0, code)
        io.save_volume(folder / f"{code}.nii.gz", image, affine)
        out[code] = (folder / f"{code}.nii.gz", label)
    return out


@pytest.mark.parametrize("code", ["LAS", "RAS", "LPS", "SAR"])
def test_export_writes_every_slice_in_radiological_display(tmp_path, phantom_cases, code):
    path, label = phantom_cases[code]
    manifest = export.export_case(
        case="c7",
        image_path=path,
        out_dir=tmp_path / "c7",
        manifest_path=tmp_path / "c7.manifest.json",
        **export.settings(),
    )
    m, g = export.load_manifest(tmp_path / "c7.manifest.json")
    assert m == manifest and m["orientation"] == code
    assert [r["slice"] for r in m["slices"]] == list(range(16))
    assert sorted(p.name for p in (tmp_path / "c7").iterdir()) == [f"c7_{k:04d}.png" for k in range(16)]
    assert tuple(m["png_shape"]) == (72, 80)  # rows = anterior-posterior, columns = right-left
    liver_cols, spleen_cols, bone_rows = [], [], []
    for r in m["slices"]:
        png = np.asarray(Image.open(tmp_path / "c7" / r["png"]))
        assert png.dtype == np.uint8 and png.shape == (72, 80)
        lab = g.extract(label, r["slice"])
        if (lab == LABELS["liver"]).any():
            liver_cols.append(np.argwhere(lab == LABELS["liver"])[:, 1].mean())
        if (lab == LABELS["spleen"]).any():
            spleen_cols.append(np.argwhere(lab == LABELS["spleen"])[:, 1].mean())
        bone_rows.extend(np.argwhere(png == 255)[:, 0])
    assert np.mean(liver_cols) < 40 < np.mean(spleen_cols)  # patient right on image left
    assert np.mean(bone_rows) > 36  # spine (brightest) in the lower half: anterior is up


def test_every_nth_and_body_only(tmp_path):
    image = np.full((20, 20, 12), -1000, dtype=np.int16)
    image[5:15, 5:15, 3:9] = 40  # the body occupies slices 3..8
    io.save_volume(tmp_path / "i.nii.gz", image, np.diag([-1.0, 1.0, 3.0, 1.0]))
    m = export.export_case(
        case="c",
        image_path=tmp_path / "i.nii.gz",
        out_dir=tmp_path / "a",
        manifest_path=tmp_path / "a.json",
        **export.settings(every=2),
    )
    assert [r["slice"] for r in m["slices"]] == [0, 2, 4, 6, 8, 10]
    m = export.export_case(
        case="c",
        image_path=tmp_path / "i.nii.gz",
        out_dir=tmp_path / "b",
        manifest_path=tmp_path / "b.json",
        **export.settings(body_only=True),
    )
    assert [r["slice"] for r in m["slices"]] == [3, 4, 5, 6, 7, 8]


def test_a_failed_export_leaves_nothing_behind(tmp_path, phantom_cases, monkeypatch):
    path, _ = phantom_cases["LAS"]
    calls = {"n": 0}
    real_save = Image.Image.save

    def flaky_save(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", flaky_save)
    with pytest.raises(OSError):
        export.export_case(
            case="c",
            image_path=path,
            out_dir=tmp_path / "c",
            manifest_path=tmp_path / "c.manifest.json",
            **export.settings(),
        )
    assert list(tmp_path.iterdir()) == []


def test_missing_image_is_a_clear_error(tmp_path):
    from samcrowd.errors import SamcrowdError

    with pytest.raises(SamcrowdError, match=r"nothere\.nii\.gz: file not found"):
        export.export_case(
            case="c",
            image_path=tmp_path / "nothere.nii.gz",
            out_dir=tmp_path / "c",
            manifest_path=tmp_path / "c.json",
            **export.settings(),
        )
    assert list(tmp_path.iterdir()) == []


def test_export_settings_come_from_the_config_section_or_the_schemas_defaults():
    assert export.settings() == {"level": 40, "width": 400, "every": 1, "body_only": False}
    assert export.settings({"window_level": 50, "every": 3}, body_only=True) == {
        "level": 50,
        "width": 400,
        "every": 3,
        "body_only": True,
    }
