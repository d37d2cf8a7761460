"""Box tables: the published campaign imports exactly, lands on the study's own SAM masks, and a
simulated crowd parses back to the boxes it drew."""

from __future__ import annotations

import dataclasses
import functools

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import BTCV_CROWD, ORGANS

from samcrowd import boxes, crowd, export, io
from samcrowd.errors import SamcrowdError
from samcrowd.openlabeling import PRESETS
from samcrowd.phantom import LABELS, PhantomSettings, make_case

PROMPTS = BTCV_CROWD / "prompts"
MED2IMAGE = PRESETS["med2image"]


def published_table(naming=MED2IMAGE):
    frames = boxes.campaign_frames(PROMPTS, naming)
    return boxes.annotator_table(PROMPTS, "crowd", naming, ORGANS, frames.get)


def test_the_published_campaign_imports_exactly():
    table = published_table()
    drawn = table[table.organ != ""]
    assert len(drawn) == 1840
    assert drawn[["case", "slice"]].drop_duplicates().shape[0] == 651
    assert (table.organ == "").sum() == 531
    assert drawn.organ.value_counts().reindex(ORGANS).tolist() == [253, 257, 254, 456, 620]
    assert table.file.nunique() == 1182
    assert boxes.summary(table, ORGANS) == (
        "1840 boxes on 651 slices (531 seen empty); spleen 253, right_kidney 257, left_kidney 254, liver 456, aorta 620"
    )


@functools.cache
def sam_volume(case):
    """The study's SAM label volume of a case (values 1..5 in ORGANS order)."""
    return io.load_volume(BTCV_CROWD / "sam_labels" / f"label{case[3:]}.nii.gz", np.uint8)[0]


def inside_fractions(table):
    """For every box: the fraction of the study's SAM mask (same organ, same slice) inside the box."""
    fractions = []
    for row in table[table.organ != ""].itertuples():
        mask = sam_volume(row.case)[:, :, row.k0] == ORGANS.index(row.organ) + 1
        if mask.any():
            fractions.append(mask[row.i0 : row.i1, row.j0 : row.j1].sum() / mask.sum())
    return np.array(fractions)


def test_the_studys_own_sam_masks_fall_inside_their_boxes_on_the_voxel_grid():
    f = inside_fractions(published_table())
    assert len(f) == 1840  # every box has its mask
    assert np.median(f) == 1.0
    assert (f >= 0.9).mean() >= 0.98  # SAM leaks a little past some boxes
    # the same check fails for a wrongly oriented import, so it does test the mapping
    flipped = dataclasses.replace(MED2IMAGE, axes={**MED2IMAGE.axes, "row_flip": False})
    assert (inside_fractions(published_table(flipped)) >= 0.9).mean() < 0.3


def test_published_slices_match_the_volumes_and_our_las_export():
    # the sam_labels volumes are LAS, so samcrowd's radiological export shows the same PNG as med2image
    affine = nib.load(BTCV_CROWD / "sam_labels/label0001.nii.gz").affine
    manifest = {"geometry": export.SliceGeometry.from_affine(affine, (512, 512, 147)).to_dict(), "slices": []}
    frame = boxes.frame_from_manifest(manifest, MED2IMAGE)
    assert frame.campaign == frame.output


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Two phantom cases exported, one simulated annotator with a noisy profile."""
    tmp = tmp_path_factory.mktemp("sim")
    settings = PhantomSettings.from_config(shape=(64, 56, 12))
    organs = dict(LABELS)
    organs = {o: organs[o] for o in ORGANS}
    inputs, frames = [], {}
    for i, code in enumerate(["LAS", "PSL"]):
        case = f"sim{i}"
        image, label, affine = make_case(settings, i, code)
        io.save_volume(tmp / f"{case}.nii.gz", image, affine)
        io.save_volume(tmp / f"{case}_seg.nii.gz", label, affine)
        manifest = export.export_case(
            case=case,
            image_path=tmp / f"{case}.nii.gz",
            out_dir=tmp / case,
            manifest_path=tmp / f"{case}.manifest.json",
            **export.settings(),
        )
        frames[case] = boxes.frame_from_manifest(manifest, PRESETS["project"])
        inputs.append((tmp / f"{case}_seg.nii.gz", tmp / f"{case}.manifest.json"))
    profile = crowd.Profile(jitter_px=2.0, scale_bias=1.1, miss_rate=0.1, slice_fraction=0.6, wrong_class_rate=0.1)
    return tmp, inputs, frames, organs, profile


@pytest.mark.parametrize("formats", [("yolo",), ("voc",), ("yolo", "voc")])
def test_simulated_files_parse_back_to_the_boxes_drawn(simulated, formats):
    tmp, inputs, frames, organs, profile = simulated
    out = tmp / f"ann-{'-'.join(formats)}"
    drawn = crowd.simulate_annotator(
        name="ann", profile=profile, cases=inputs, organ_values=organs, out_dir=out, seed=3, formats=formats
    )
    table = boxes.annotator_table(out, "ann", PRESETS["project"], ORGANS, frames.get)
    got = {(r.case, r.slice, r.organ, r.x0, r.y0, r.x1, r.y1) for r in table[table.organ != ""].itertuples()}
    want = {
        (stem.rsplit("_", 1)[0], int(stem.rsplit("_", 1)[1]), b.cls, b.x0, b.y0, b.x1, b.y1)
        for stem, bs in drawn.items()
        for b in bs
    }
    assert got == want and len(want) > 20
    seen_empty = {(r.case, r.slice) for r in table[table.organ == ""].itertuples()}
    assert seen_empty == {(s.rsplit("_", 1)[0], int(s.rsplit("_", 1)[1])) for s, bs in drawn.items() if not bs}


def test_voxel_boxes_agree_with_the_pixel_boxes_through_the_manifest(simulated):
    tmp, inputs, frames, organs, profile = simulated
    out = tmp / "ann-geo"
    crowd.simulate_annotator(
        name="ann",
        profile=dataclasses.replace(profile, jitter_px=0, scale_bias=1, miss_rate=0, wrong_class_rate=0),
        cases=inputs,
        organ_values=organs,
        out_dir=out,
        seed=0,
        formats=("yolo", "voc"),
    )
    table = boxes.annotator_table(out, "ann", PRESETS["project"], ORGANS, frames.get)
    for case, (label_path, _) in zip(["sim0", "sim1"], inputs):
        label, _ = io.load_volume(label_path)
        for r in table[(table.case == case) & (table.organ != "")].itertuples():
            k_axis = frames[case].output.slice_axis
            index = [slice(None)] * 3
            index[k_axis] = slice(r.slice, r.slice + 1)
            on_slice = np.zeros(label.shape, bool)
            on_slice[tuple(index)] = label[tuple(index)] == organs[r.organ]
            assert ((r.i0, r.i1), (r.j0, r.j1), (r.k0, r.k1)) == tuple(
                (
                    int(np.flatnonzero(on_slice.any(axis=tuple(a for a in range(3) if a != ax)))[0]),
                    int(np.flatnonzero(on_slice.any(axis=tuple(a for a in range(3) if a != ax)))[-1]) + 1,
                )
                for ax in range(3)
            )


def make_folder(tmp_path, files, classes="spleen\nright_kidney\nleft_kidney\nliver\naorta\n"):
    folder = tmp_path / "ann"
    (folder / "YOLO_darknet").mkdir(parents=True)
    if classes is not None:
        (folder / "class_list.txt").write_text(classes)
    for name, text in files.items():
        (folder / "YOLO_darknet" / name).write_text(text)
    return folder


def project_frames(case="c1", shape=(20, 16, 6)):
    g = export.SliceGeometry.from_affine(np.diag([-1.0, 1.0, 3.0, 1.0]), shape)
    return {case: boxes.CaseFrame(g, g, frozenset(range(shape[2])))}


def test_other_classes_are_ignored_and_counted(tmp_path, caplog):
    folder = make_folder(
        tmp_path,
        {
            "c1_0002.txt": "0 0.5 0.5 0.3 0.3\n5 0.5 0.5 0.3 0.3\n5 0.4 0.4 0.3 0.3\n",
            "c1_0003.txt": "5 0.5 0.5 0.3 0.3\n",
        },
        classes="spleen\nright_kidney\nleft_kidney\nliver\naorta\nstomach\n",
    )
    with caplog.at_level("INFO"):
        table = boxes.annotator_table(folder, "ann", PRESETS["project"], ORGANS, project_frames().get)
    assert table.organ.tolist() == ["spleen", ""]  # slice 3 only showed another class: seen, no organ
    assert "ignored 3 box(es) of class 'stomach'" in caplog.text


@pytest.mark.parametrize(
    "files, message",
    [
        ({"c1-0002.txt": ""}, r"c1-0002\.txt: unknown stem 'c1-0002': does not match the 'project' naming"),
        ({"zz_0002.txt": ""}, r"zz_0002\.txt: unknown stem 'zz_0002': case 'zz' is not a case of this study"),
        ({"c1_0009.txt": ""}, r"c1_0009\.txt: unknown stem 'c1_0009': slice 9 of case 'c1' was not exported"),
        ({"c1_0002.txt": "", "c1_2.txt": ""}, r"duplicate stem: 'c1_2' and 'c1_0002' both name slice 2 of case 'c1'"),
        ({"c1_0002.txt": "6 0.5 0.5 0.1 0.1\n"}, r"c1_0002\.txt:1: class id 6 is beyond the 5 classes"),
    ],
)
def test_bad_stems_and_classes_name_the_file(tmp_path, files, message):
    folder = make_folder(tmp_path, files)
    with pytest.raises(SamcrowdError, match=message):
        boxes.annotator_table(folder, "ann", PRESETS["project"], ORGANS, project_frames().get, known_cases={"c1"})


def test_a_folder_without_class_list_needs_a_preset_that_has_one(tmp_path):
    folder = make_folder(tmp_path, {"c1_0002.txt": ""}, classes=None)
    with pytest.raises(SamcrowdError, match="no class_list.txt in this annotation folder"):
        boxes.annotator_table(folder, "ann", PRESETS["project"], ORGANS, project_frames().get)


def test_class_names_match_organs_by_normalised_name_or_override():
    assert boxes.class_map(["Right Kidney", "left-kidney", "Leber", "stomach"], ORGANS, {"Leber": "liver"}) == {
        "Right Kidney": "right_kidney",
        "left-kidney": "left_kidney",
        "Leber": "liver",
    }


def test_tables_round_trip_through_tsv(tmp_path):
    table = published_table()
    io.write_tsv(tmp_path / "t.tsv", table)
    back = boxes.read_table(tmp_path / "t.tsv")
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert back.i0.dtype == "Int64"
