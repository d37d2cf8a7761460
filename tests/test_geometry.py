"""Voxel <-> PNG geometry: a box drawn on an exported PNG maps back onto exactly the voxels shown."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from samcrowd import export, io
from samcrowd.geometry import SliceGeometry, mask_bbox, orientation_code, reorient

# all 48 orientations: a permutation of the three axes, each flipped or not
ALL_CODES = ["".join(p) for pair in itertools.product("LR", "AP", "SI") for p in itertools.permutations(pair)]


def ras_affine(shape, spacing):
    a = np.diag([*spacing, 1.0])
    a[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(shape, spacing)]
    return a


@st.composite
def scene(draw):
    """A canonical RAS volume holding one random 3D object, stored in a random orientation."""
    shape = tuple(draw(st.integers(6, 30)) for _ in range(3))
    spacing = tuple(draw(st.sampled_from([0.7, 0.8, 1.0, 2.5, 3.0])) for _ in range(3))
    code = draw(st.sampled_from(ALL_CODES))
    canon = np.zeros(shape, dtype=bool)
    lo = [draw(st.integers(0, n - 1)) for n in shape]
    hi = [draw(st.integers(low + 1, n)) for low, n in zip(lo, shape)]
    sub = canon[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    seed = draw(st.integers(0, 2**32 - 1))
    sub[...] = np.random.default_rng(seed).random(sub.shape) < draw(st.floats(0.1, 1.0))
    if not canon.any():
        canon[lo[0], lo[1], lo[2]] = True
    data, affine = reorient(canon, ras_affine(shape, spacing), code)
    return data, affine, code


def test_all_codes_are_distinct_orientations():
    assert len(set(ALL_CODES)) == 48


@settings(max_examples=400, deadline=None)
@given(scene())
def test_box_around_object_on_png_maps_back_onto_exactly_its_voxels(s):
    volume, affine, code = s
    assert orientation_code(affine) == code
    g = SliceGeometry.from_affine(affine, volume.shape)
    for k in range(g.n_slices):
        png = g.extract(volume, k)
        box = mask_bbox(png)
        if box is None:
            continue
        (y0, y1), (x0, x1) = box
        ranges = g.box_to_voxels((x0, y0, x1, y1), k)
        on_slice = np.zeros_like(volume)
        index = [slice(None)] * 3
        index[g.slice_axis] = k
        on_slice[tuple(index)] = volume[tuple(index)]
        assert ranges == mask_bbox(on_slice)  # the box is exactly the object's voxel extent
        inside = np.zeros_like(volume)
        inside[tuple(slice(a, b) for a, b in ranges)] = True
        assert not (on_slice & ~inside).any()
        assert g.voxels_to_box(ranges) == ((x0, y0, x1, y1), k)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ALL_CODES), st.tuples(*[st.integers(3, 12)] * 3))
def test_png_shows_patient_right_on_the_left_and_anterior_up(code, shape):
    # markers placed in patient space (canonical RAS: index grows toward right, anterior, superior)
    canon = np.zeros(shape, dtype=np.int16)
    canon[-1, :, :] += 1  # patient's far right
    canon[:, -1, :] += 2  # most anterior
    canon[:, :, -1] += 4  # most superior
    data, affine = reorient(canon, ras_affine(shape, (1.0, 1.0, 3.0)), code)
    g = SliceGeometry.from_affine(affine, data.shape)
    assert g.png_shape == (shape[1], shape[0])
    top = g.extract(data, 0)
    assert (top[:, 0] & 1).all() and not (top[:, 1:] & 1).any()  # right -> first column
    assert (top[0, :] & 2).all() and not (top[1:, :] & 2).any()  # anterior -> first row
    superior = [k for k in range(g.n_slices) if (g.extract(data, k) & 4).all()]
    assert len(superior) == 1  # slices run along superior-inferior


@pytest.mark.parametrize("code", ALL_CODES)
def test_exported_png_file_round_trip_for_every_orientation(tmp_path, code):
    rng = np.random.default_rng(sum(map(ord, code)))
    shape = (22, 18, 9)
    canon = np.full(shape, -1000, dtype=np.int16)
    obj = np.zeros(shape, dtype=bool)
    c = rng.integers([3, 3, 2], [18, 14, 7])
    obj[c[0] - 2 : c[0] + 3, c[1] - 1 : c[1] + 3, c[2] - 1 : c[2] + 2] = rng.random((5, 4, 3)) < 0.7
    obj[tuple(c)] = True
    canon[obj] = 1000
    image, affine = reorient(canon, ras_affine(shape, (0.8, 0.8, 3.0)), code)
    stored_obj, _ = reorient(obj, ras_affine(shape, (0.8, 0.8, 3.0)), code)
    io.save_volume(tmp_path / "img.nii.gz", image, affine)
    manifest = export.export_case(
        case="c1",
        image_path=tmp_path / "img.nii.gz",
        out_dir=tmp_path / "png",
        manifest_path=tmp_path / "m.json",
        **export.settings(),
    )
    _, g = export.load_manifest(tmp_path / "m.json")
    hits = 0
    for record in manifest["slices"]:
        png = np.asarray(Image.open(tmp_path / "png" / record["png"]))
        box = mask_bbox(png == 255)
        if box is None:
            continue
        hits += 1
        (y0, y1), (x0, x1) = box
        ranges = g.box_to_voxels((x0, y0, x1, y1), record["slice"])
        only_slice = np.zeros_like(stored_obj)
        sl = [slice(None)] * 3
        sl[g.slice_axis] = record["slice"]
        only_slice[tuple(sl)] = stored_obj[tuple(sl)]
        assert ranges == mask_bbox(only_slice)
    assert hits >= 1


def test_insert_is_the_inverse_of_extract():
    rng = np.random.default_rng(0)
    for code in ALL_CODES:
        vol = rng.integers(0, 100, (5, 6, 7))
        g = SliceGeometry.from_affine(reorient(vol, np.eye(4), code)[1], vol.shape)
        out = np.zeros_like(vol)
        for k in range(g.n_slices):
            g.insert(out, k, g.extract(vol, k))
        assert (out == vol).all()


def test_boxes_outside_the_image_or_slice_are_refused():
    g = SliceGeometry.from_affine(np.diag([-1.0, 1, 3, 1]), (10, 8, 4))
    with pytest.raises(ValueError):
        g.box_to_voxels((0, 0, 11, 3), 0)
    with pytest.raises(ValueError):
        g.box_to_voxels((4, 2, 4, 3), 0)
    with pytest.raises(IndexError):
        g.box_to_voxels((0, 0, 2, 2), 4)


def test_geometry_survives_the_manifest():
    g = SliceGeometry.from_affine(np.diag([-0.7, 0.7, 3, 1]), (10, 8, 4))
    assert SliceGeometry.from_dict(g.to_dict()) == g


def test_btcv_las_display_is_the_published_med2image_rotation():
    # ../shared/reference/btcv-crowd/README.md: volume[:, :, k] == fliplr(flipud(rot90(png)))
    vol = np.random.default_rng(1).integers(0, 255, (12, 10, 3))
    btcv_affine = np.diag([-0.7, 0.7, 3.0, 1.0])
    g = SliceGeometry.from_affine(btcv_affine, vol.shape)
    assert orientation_code(btcv_affine) == "LAS"
    for k in range(3):
        png = g.extract(vol, k)
        assert (np.fliplr(np.flipud(np.rot90(png))) == vol[:, :, k]).all()
